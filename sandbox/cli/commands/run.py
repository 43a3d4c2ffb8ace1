"""`sandbox run`: one server under one allocator, measured; its summary and stair read."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from sandbox.cli import flags
from sandbox.cli.lifecycle import settle, sigterm_as_interrupt


@click.command("run")
@flags.options(flags.RUN)
def run_cmd(
    config_path: Path | None,
    port: int | None,
    compress: bool,
    profile: str | None,
    thresholds: tuple[str, ...],
    limit_bytes: int | None,
    **settings: Any,
) -> None:
    """Run the stair-stepper (or your app) under one allocator, drive it with Locust, and
    record its memory."""
    from sandbox.cli.progress import print_run_summary, run_showing_progress
    from sandbox.config import settings as config
    from sandbox.measure.thresholds import failed, parse_thresholds

    try:
        bench = config.load_benchmark(config_path)
        if settings.get("results_dir"):  # a path typed here is relative to where it was typed
            settings["results_dir"] = str(Path(settings["results_dir"]).resolve())
        settings.update(parse_thresholds(thresholds, flag=flags.THRESHOLD.name))
        overrides = config.validate_overrides("option", settings)
        spec = config.build_spec(bench, overrides, port=port, compress=compress)
        spec = spec.with_(profile=profile)
        settle([spec.output.results_dir / "runs"])
        sigterm_as_interrupt()
        result, path = run_showing_progress(spec)
    except KeyboardInterrupt:
        click.echo("Interrupted before anything was measured; no result written.", err=True)
        sys.exit(130)
    print_run_summary(result, path, _stair_lines(result, limit_bytes))
    if result.status == "interrupted":
        click.echo(f"Interrupted; partial result written to {path}", err=True)
        sys.exit(130)
    if result.status != "ok":
        click.echo(f"Error: {result.status_detail}; partial result written to {path}", err=True)
        sys.exit(1)
    broken = failed(result.thresholds)
    if broken:
        click.echo(f"Error: threshold failed: {'; '.join(broken)}", err=True)
        sys.exit(1)


def _stair_lines(result: Any, limit_bytes: int | None) -> list[str]:
    """The run's stair read (what each batch added, levels off or climbing), when it has one."""
    from sandbox.analysis.stairs import group_lines

    read = group_lines(result.allocator.name, [result], limit_bytes)
    return [*read.lines] if read is not None and result.status == "ok" else []
