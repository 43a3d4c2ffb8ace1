"""`sandbox compare`: results side by side, with ratios, intervals and the verdict."""

from __future__ import annotations

from pathlib import Path

import click

from sandbox.cli import flags
from sandbox.cli.lifecycle import settle
from sandbox.errors import SandboxError


@click.command("compare")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--baseline", help="Group to compare against (default: glibc, else the first).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "csv", "json"]),
    default="table",
    show_default=True,
)
@flags.LIMIT.option
def compare_cmd(
    paths: tuple[Path, ...], baseline: str | None, fmt: str, limit_bytes: int | None
) -> None:
    """Compare runs side by side: per allocator, RSS and latency with ratios and intervals."""
    from sandbox.analysis import compare, report
    from sandbox.results import files as result_files

    settle(paths)
    loaded = result_files.load_all(paths)
    if not loaded:
        raise SandboxError(f"no result files under {', '.join(map(str, paths))}")
    comparison = compare.compare(loaded, baseline=baseline, limit_bytes=limit_bytes)
    click.echo(report.render(comparison, fmt))
