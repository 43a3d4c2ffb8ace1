"""`sandbox run`: one server under one allocator, measured; its summary and stair read."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sandbox.cli import flags
from sandbox.cli.lifecycle import settle, sigterm_as_interrupt

if TYPE_CHECKING:
    from sandbox.config.run_spec import RunSpec


@click.command("run")
@flags.options(flags.RUN)
def run_cmd(
    config_path: Path | None,
    port: int | None,
    compress: bool,
    profile: str | None,
    thresholds: tuple[str, ...],
    limit_bytes: int | None,
    server_host: str | None,
    expose: bool,
    master_bind: str | None,
    expect_remote_workers: int,
    **settings: Any,
) -> None:
    """Run the stair-stepper (or your app) under one allocator, drive it with Locust, and
    record its memory."""
    from sandbox.cli.progress import print_run_summary, run_showing_progress
    from sandbox.config import settings as config
    from sandbox.config.remote import RemoteLoad, with_remote_load
    from sandbox.measure.thresholds import failed, parse_thresholds

    remote = RemoteLoad(server_host, expose, master_bind, expect_remote_workers)

    try:
        bench = config.load_benchmark(config_path)
        if settings.get("results_dir"):  # a path typed here is relative to where it was typed
            settings["results_dir"] = str(Path(settings["results_dir"]).resolve())
        settings.update(parse_thresholds(thresholds, flag=flags.THRESHOLD.name))
        overrides = config.validate_overrides("option", settings)
        spec = config.build_spec(bench, overrides, port=port, compress=compress)
        spec = with_remote_load(spec.with_(profile=profile), remote)
        if spec.load.remote_workers:
            click.echo(remote_workers_note(spec), err=True)
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
    from sandbox.analysis.stair_read import group_lines

    read = group_lines(result.allocator.name, [result], limit_bytes)
    return [*read.lines] if read is not None and result.status == "ok" else []


def remote_workers_note(spec: RunSpec) -> str:
    """What to start on each worker machine, and what to open: a worker quits with its master,
    and each batch starts a new master, so the command loops."""
    import shlex

    from sandbox.load.driver import locust_cwd, remote_worker_command, workers_wait_s

    load, server = spec.load, spec.server
    assert load.master_port is not None, "remote workers come with --master-bind"
    # A master bound to every address is reached where the server is.
    reach = server.host if load.master_host in ("0.0.0.0", "::") else load.master_host
    command = shlex.join(remote_worker_command(load, reach, load.master_port))
    port = server.port or "<a free port; fix it with --port>"
    where = "this repository" if load.drill else f"the folder of {load.locustfile.name}"
    return "\n".join(
        [
            f"Each batch waits up to {workers_wait_s(load):g} s for {load.remote_workers} "
            f"Locust worker(s) from other machines. Open to them only: the master's "
            f"{reach}:{load.master_port} and the server's {server.host}:{port}.",
            f"On each worker machine, in a copy of {where} (cwd here: {locust_cwd(load)}), run:",
            f"  while :; do {command}; sleep 1; done",
        ]
    )
