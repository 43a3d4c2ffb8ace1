"""The `sandbox` command: thin wrappers that parse, call one core function, and print.

Core code raises SandboxError subclasses; this module alone turns them into `Error: ...` and an
exit code (2 for usage, 1 otherwise). Bugs keep their traceback.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click

from sandbox import __version__
from sandbox.errors import SandboxError
from sandbox.load.models import MODELS


def _fail(exc: SandboxError) -> NoReturn:
    if exc.exit_code == 2:
        raise click.UsageError(str(exc))
    raise click.ClickException(str(exc))


def _sigterm_as_interrupt() -> None:
    """SIGTERM and SIGINT both end a run as Ctrl-C does (a partial result, exit 130).

    SIGINT is set explicitly: a process started in the background by a non-interactive shell
    inherits SIGINT *ignored*, and Python then never raises KeyboardInterrupt for it.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sandbox")
def cli() -> None:
    """Measure a deliberately fragmenting Python web service under different allocators."""


def _config_option(f: Any) -> Any:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="benchmark.yml to read (default: ./benchmark.yml, else the repository's).",
    )(f)


class _SizeType(click.ParamType):  # type: ignore[type-arg]
    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from sandbox.config import parse_size

        try:
            return parse_size(value)
        except ValueError:
            self.fail(f"{value!r} is not a size such as 2GiB or 800MiB", param, ctx)


@cli.command("run")
@click.option(
    "--allocator", "-a", help="glibc, glibc-arena2, jemalloc, jemalloc-bg, mimalloc, tcmalloc, …"
)
@click.option("--tags", help="Plans to send, comma-separated: tiny,small,medium,large.")
@click.option("--users", "concurrency", type=click.IntRange(min=1), help="Concurrent users.")
@click.option("--rampup", type=click.FloatRange(min=0), help="Seconds to start all users.")
@click.option("--iterations", type=click.IntRange(min=1), help="Per batch, per selected plan.")
@click.option("--batches", type=click.IntRange(min=1), help="Load batches.")
@click.option("--pause", "pause_s", type=click.FloatRange(min=0), help="Seconds between batches.")
@click.option("--baseline", "baseline_s", type=click.FloatRange(min=0), help="Idle s before load.")
@click.option("--idle", "idle_s", type=click.FloatRange(min=0), help="Idle seconds after load.")
@click.option("--sleep-ms", type=click.IntRange(min=0), help="Simulated DB latency per request.")
@click.option("--handler", type=click.Choice(["sync", "async"]), help="Threadpool or event loop.")
@click.option("--threads", type=click.IntRange(min=1), help="Threadpool size (sync handler).")
@click.option("--pymalloc", type=click.Choice(["on", "off"]), help="off: PYTHONMALLOC=malloc.")
@click.option("--interval", "interval_s", type=click.FloatRange(min=0.001), help="Sampler s.")
@click.option("--max-rss", type=_SizeType(), help="Stop the server past this RSS, e.g. 2GiB.")
@click.option(
    "--hang-timeout",
    "hang_timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop a server that answers nothing for this many seconds (default 30).",
)
@click.option(
    "--trim", "trim_s", type=click.FloatRange(min=0), help="Seconds after asking for memory back."
)
@click.option(
    "--objects", is_flag=True, default=None, help="Record top Python object types (pympler)."
)
@click.option("--profile", type=click.Choice(["memray"]), help="Run the server under memray.")
@click.option("--port", type=click.IntRange(1, 65535), help="Server port (default: a free one).")
@click.option("--results-dir", type=click.Path(file_okay=False), help="Where results go.")
@click.option("--gzip", "compress", is_flag=True, help="Write the result as .json.gz.")
@click.option(
    "--load",
    type=click.Choice(MODELS),
    help="Load model of each batch (default iterations: drill's fixed count).",
)
@click.option("--rate", type=click.FloatRange(min=0), help="rate/spike: req/s; ramp: start.")
@click.option("--to-rate", type=click.FloatRange(min=0), help="ramp: req/s at the end.")
@click.option("--duration", "duration_s", type=click.FloatRange(min=0), help="Batch seconds.")
@click.option("--spike-x", type=click.FloatRange(min=1, min_open=True), help="Burst / base.")
@click.option("--spike-at", "spike_at_s", type=click.FloatRange(min=0), help="Burst start, s.")
@click.option("--spike-for", "spike_s", type=click.FloatRange(min=0), help="Burst length, s.")
@click.option(
    "--load-workers",
    type=click.IntRange(min=0),
    help="Locust worker processes (distributed mode); 0: one process.",
)
@click.option(
    "--server-workers", "workers", type=click.IntRange(min=1), help="uvicorn worker processes."
)
@click.option("--app", help="Serve your ASGI app (module:attr) instead of the stair-stepper.")
@click.option("--cmd", help="Run any server command; {port} and {host} are filled in.")
@click.option("--ready-url", help="URL that answers once the server is up ({port} filled in).")
@click.option("--locustfile", type=click.Path(dir_okay=False), help="Your own Locust file.")
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="NAME=VALUE",
    help="Fail the run past a limit: p95_ms, p99_ms, error_rate, min_rps, peak_rss, growth "
    "(e.g. p95_ms=800, peak_rss=500MiB). Repeatable.",
)
@_config_option
def run_cmd(
    config_path: Path | None,
    port: int | None,
    compress: bool,
    profile: str | None,
    thresholds: tuple[str, ...],
    **options: Any,
) -> None:
    """Run the stair-stepper (or your app) under one allocator, drive it with Locust, and
    record its memory."""
    from sandbox import config
    from sandbox.measure.progress import print_run_summary, run_showing_progress
    from sandbox.measure.thresholds import failed

    try:
        bench = config.load_benchmark(config_path)
        if options.get("pymalloc") is not None:
            options["pymalloc"] = options["pymalloc"] == "on"
        if options.get("results_dir"):  # a path typed here is relative to where it was typed
            options["results_dir"] = str(Path(options["results_dir"]).resolve())
        options.update(_parse_thresholds(thresholds))
        overrides = config.validate_overrides("option", options)
        spec = config.build_spec(bench, overrides, port=port, compress=compress)
        spec = spec.with_(profile=profile)
        _sigterm_as_interrupt()
        result, path = run_showing_progress(spec)
    except KeyboardInterrupt:
        click.echo("Interrupted before anything was measured; no result written.", err=True)
        sys.exit(130)
    except SandboxError as exc:
        _fail(exc)
    print_run_summary(result, path)
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


def _parse_thresholds(items: tuple[str, ...]) -> dict[str, Any]:
    """`NAME=VALUE` strings -> setting values (sizes stay strings for the setting's check)."""
    from sandbox.config import THRESHOLDS, validate_overrides
    from sandbox.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in THRESHOLDS:
            raise ConfigError(
                f"--threshold {item!r}: expected NAME=VALUE, NAME one of {', '.join(THRESHOLDS)}"
            )
        try:
            raw: Any = value if name in ("peak_rss", "growth") else float(value)
            out.update(validate_overrides("threshold", {name: raw}))
        except ValueError:
            raise ConfigError(f"--threshold {item!r}: {value!r} is not a number") from None
        except ConfigError as exc:
            raise ConfigError(f"--threshold {exc}") from None
    return out


@cli.command("doctor")
@_config_option
def doctor_cmd(config_path: Path | None) -> None:
    """List every allocator: found or missing, library path, Debian package and version."""
    from sandbox import allocators, config

    try:
        bench = config.load_benchmark(config_path)
    except SandboxError as exc:
        _fail(exc)
    rows = []
    missing = 0
    packages: set[str] = set()
    for name, alloc in allocators.registry(bench.allocators).items():
        if alloc.library is None:
            path, state = "(built into libc)", "found"
        else:
            found = allocators.find_library(alloc.library)
            path, state = (found, "found") if found else (alloc.library, "MISSING")
            missing += found is None
            if found is None and alloc.package:
                packages.add(alloc.package)
        version = allocators.package_version(alloc.package) or "-"
        env = " ".join(f"{k}={v}" for k, v in alloc.env.items())
        rows.append((name, state, path, f"{alloc.package or '-'} {version}", env))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + f"  {r[4]}")
    if missing:
        if packages:
            install = " ".join(sorted(packages))
            click.echo(f"\nInstall missing libraries with: apt-get install {install}", err=True)
        sys.exit(1)


@cli.command("serve")
@click.option("--allocator", "-a", default="glibc", show_default=True)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Bind address (loopback by default)."
)
@click.option("--port", type=click.IntRange(1, 65535), default=3000, show_default=True)
@click.option("--sleep-ms", type=click.IntRange(min=0), help="Simulated DB latency (SLEEP_MS).")
@click.option("--handler", type=click.Choice(["sync", "async"]))
@click.option("--pymalloc", type=click.Choice(["on", "off"]), default="on", show_default=True)
@_config_option
def serve_cmd(
    allocator: str,
    host: str,
    port: int,
    sleep_ms: int | None,
    handler: str | None,
    pymalloc: str,
    config_path: Path | None,
) -> None:
    """Serve the stair-stepper in the foreground under an allocator (for plain `locust` use)."""
    import os

    from sandbox import allocators, config
    from sandbox.measure.launch import build_environ, server_command
    from sandbox.processes import port_in_use

    try:
        bench = config.load_benchmark(config_path)
        overrides = config.validate_overrides("option", {"sleep_ms": sleep_ms, "handler": handler})
        spec = config.build_spec(bench, overrides, port=port)
        resolved = allocators.resolve(allocator, bench.allocators)
        if port_in_use(host, port):
            raise SandboxError(
                f"port {port} on {host} is in use; stop the other server or pass --port"
            )
    except SandboxError as exc:
        _fail(exc)
    env = build_environ(spec.server.to_environ(), resolved.environ(), pymalloc=pymalloc == "on")
    target = "" if port == 3000 and host == "127.0.0.1" else f" --host http://{host}:{port}"
    click.echo(
        f"Serving on http://{host}:{port} under {allocator} "
        f"(handler {spec.server.handler}, SLEEP_MS {spec.server.sleep_ms}); "
        f"drive it from the repository root with: locust --tags medium{target}",
        err=True,
    )
    sys.stdout.flush()
    os.execve(sys.executable, server_command(host, port), env)


def _run_with_progress(spec: Any, index: int, total: int) -> Any:
    from sandbox.analysis.groups import label
    from sandbox.measure.progress import run_showing_progress

    name = label(spec.allocator, spec.parameters)
    click.echo(f"\n[{index + 1}/{total}] {name} (repeat {spec.repeat + 1})", err=True)
    result, path = run_showing_progress(spec)
    click.echo(f"  -> {result.status}: {path}", err=True)
    return result, path


@cli.command("experiment")
@click.argument("experiment_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--repeats", type=click.IntRange(min=1), help="Override the file's repeats.")
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path))
@_config_option
def experiment_cmd(
    experiment_file: Path, repeats: int | None, results_dir: Path | None, config_path: Path | None
) -> None:
    """Run an experiment (allocators × settings × repeats), then compare and plot it."""
    from sandbox import config, experiment
    from sandbox.measure.thresholds import failed

    try:
        bench = config.load_benchmark(config_path)
        exp = experiment.load_experiment(experiment_file)
        _sigterm_as_interrupt()
        outcome = experiment.run_experiment(
            exp,
            bench,
            _run_with_progress,
            repeats=repeats,
            results_dir=results_dir.resolve() if results_dir else None,
        )
    except SandboxError as exc:
        _fail(exc)
    ok = [r for r in outcome.results if r.status == "ok"]
    if not ok:
        click.echo(f"Error: no run of {exp.name} completed; see {outcome.folder}", err=True)
        sys.exit(130 if outcome.interrupted else 1)
    try:
        table, plots = experiment.report(outcome, baseline=exp.baseline)
    except SandboxError as exc:
        _fail(exc)
    click.echo("\n" + table)
    click.echo(f"\nresults:    {outcome.folder}/")
    click.echo(f"comparison: {outcome.folder / 'comparison.md'}")
    click.echo(f"report:     {outcome.folder / 'report.html'}")
    for p in plots:
        click.echo(f"plot:       {p}")
    for failure in outcome.failures:
        click.echo(f"warning: run failed: {failure}", err=True)
    if outcome.interrupted:
        click.echo("Interrupted; the comparison covers the runs that finished.", err=True)
        sys.exit(130)
    broken = [(r, failed(r.thresholds)) for r in ok]
    broken = [(r, lines) for r, lines in broken if lines]
    if broken:
        for r, lines in broken:
            click.echo(f"Error: threshold failed in {r.run_id}: {'; '.join(lines)}", err=True)
        sys.exit(1)


@cli.command("compare")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--baseline", help="Group to compare against (default: glibc, else the first).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "csv", "json"]),
    default="table",
    show_default=True,
)
def compare_cmd(paths: tuple[Path, ...], baseline: str | None, fmt: str) -> None:
    """Compare runs side by side: per allocator, RSS and latency with ratios and intervals."""
    from sandbox import results
    from sandbox.analysis import compare, report

    try:
        loaded = results.load_all(paths)
        if not loaded:
            raise SandboxError(f"no result files under {', '.join(map(str, paths))}")
        comparison = compare.compare(loaded, baseline=baseline)
    except SandboxError as exc:
        _fail(exc)
    click.echo(report.render(comparison, fmt))


@cli.command("plot")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--x",
    "x_axis",
    type=click.Choice(["time", "requests"]),
    default="time",
    show_default=True,
    help="Seconds, or requests completed.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file stem (default: beside the first result, rss[-requests]).",
)
@click.option(
    "--format",
    "formats",
    type=click.Choice(["png", "svg"]),
    multiple=True,
    help="png and/or svg (default both).",
)
@click.option(
    "--view",
    type=click.Choice(["rss", "allocator"]),
    default="rss",
    show_default=True,
    help="rss: RSS curves and their medians; allocator: RSS, held and in-use memory.",
)
def plot_cmd(
    paths: tuple[Path, ...], x_axis: str, out: Path | None, formats: tuple[str, ...], view: str
) -> None:
    """Plot RSS over time, one panel per allocator plus an overlay of medians (--view rss), or
    where the memory is: RSS, what the allocator holds and what is in use (--view allocator)."""
    from sandbox import results
    from sandbox.analysis import plot

    try:
        files = results.find_result_files(paths)
        loaded = results.load_all(paths)
        if not loaded:
            raise SandboxError(f"no result files under {', '.join(map(str, paths))}")
    except SandboxError as exc:
        _fail(exc)
    if out is None:
        out = plot.output_stem(files, view=view, x=x_axis)
    try:
        if view == "allocator":
            fig = plot.plot_decomposition(loaded)
        else:
            fig = plot.plot_rss(loaded, x="requests" if x_axis == "requests" else "time")
    except SandboxError as exc:
        _fail(exc)
    for p in plot.save(fig, out, formats=formats or ("png", "svg")):
        click.echo(str(p))


def main() -> None:
    cli(prog_name="sandbox")


# --- report (the shareable HTML page) ---------------------------------------------------------


@cli.command("report")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--baseline", help="Group to compare against (default: glibc, else the first).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the page (default: report.html in the folder, or beside the file).",
)
def report_cmd(paths: tuple[Path, ...], baseline: str | None, out: Path | None) -> None:
    """Write report.html: the answer, the comparison, the plots, the warnings and how to
    reproduce them, in one file that opens offline (inline SVG, no script)."""
    from sandbox.analysis import html

    try:
        written = html.write_report(list(paths), out, baseline=baseline)
    except SandboxError as exc:
        _fail(exc)
    click.echo(str(written))
