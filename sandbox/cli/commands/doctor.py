"""`sandbox doctor`: which allocators this host has, verified, and whether inspect can attach."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sandbox.cli import flags


@click.command("doctor")
@flags.options([flags.CONFIG])
def doctor_cmd(config_path: Path | None) -> None:
    """List every allocator: found or missing, library path, Debian package and version; then
    which gdb `sandbox inspect` uses and whether it passed its preflight on this host."""
    from sandbox.allocators import registry as allocators
    from sandbox.config import settings as config

    bench = config.load_benchmark(config_path)
    rows = allocators.doctor_rows(bench.allocators)
    cells = [row.cells() for row in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    for c in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(c[:4], widths, strict=True)) + f"  {c[4]}")
    from sandbox.inspector import inspection

    click.echo("")
    click.echo(inspection.readiness())
    if any(not row.found for row in rows):
        packages = allocators.missing_packages(rows)
        if packages:
            install = " ".join(packages)
            click.echo(f"\nInstall missing libraries with: apt-get install {install}", err=True)
        sys.exit(1)
