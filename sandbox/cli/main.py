"""The `sandbox` command: its click group and commands. Each parses its flags, calls the
packages that do the work, and prints.

Core code raises SandboxError subclasses; this module alone turns them into `Error: ...` and an
exit code (2 for usage, 1 otherwise). Bugs keep their traceback.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import Any

import click

from sandbox import __version__
from sandbox.cli import flags
from sandbox.errors import ConfigError, SandboxError


class SandboxGroup(click.Group):
    """The `sandbox` group: the one place a SandboxError becomes `Error: <message>` and its exit
    code. A usage error (ConfigError) comes with the command's usage line, as click shows its
    own; a bad result file (ResultFormatError) also exits 2, without it. Any other exception is
    a bug and keeps its traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise click.UsageError(str(exc), self._command_context(ctx)) from exc
        except SandboxError as exc:
            error = _BadInput if exc.exit_code == _BadInput.exit_code else click.ClickException
            raise error(str(exc)) from exc

    def _command_context(self, ctx: click.Context) -> click.Context:
        """A context of the command that failed (its own is closed by now), for its usage line."""
        name = ctx.invoked_subcommand
        command = self.get_command(ctx, name) if name else None
        return click.Context(command, info_name=name, parent=ctx) if command else ctx


def _settle(paths: Iterable[Path]) -> None:
    """Mark the checkpoints under `paths` whose harness died (`harness-died`), and say so."""
    from sandbox.results import checkpoints

    for done in checkpoints.settle(paths):
        click.echo(f"note: {done.describe()}", err=True)


class _BadInput(click.ClickException):
    """`Error: ...` with exit code 2, without a usage line (a bad result file)."""

    exit_code = 2


def _sigterm_as_interrupt() -> None:
    """SIGTERM and SIGINT both end a run as Ctrl-C does (a partial result, exit 130).

    SIGINT is set explicitly: a process started in the background by a non-interactive shell
    inherits SIGINT *ignored*, and Python then never raises KeyboardInterrupt for it.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


@click.group(cls=SandboxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sandbox")
def cli() -> None:
    """Measure a deliberately fragmenting Python web service under different allocators."""


@cli.command("run")
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
        _settle([spec.output.results_dir / "runs"])
        _sigterm_as_interrupt()
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


@cli.command("doctor")
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


@cli.command("serve")
@flags.options(flags.SERVE)
def serve_cmd(
    allocator: str,
    host: str,
    port: int,
    sleep_ms: int | None,
    handler: str | None,
    pymalloc: str,
    expose: bool,
    config_path: Path | None,
) -> None:
    """Serve the stair-stepper in the foreground under an allocator (for plain `locust` use)."""
    import os

    from sandbox.allocators import registry as allocators
    from sandbox.config import settings as config
    from sandbox.config.server_settings import exposure_error
    from sandbox.measure.launch import build_environ, server_command
    from sandbox.system.processes import port_in_use

    refusal = exposure_error(host, expose)
    if refusal:
        raise ConfigError(refusal)
    bench = config.load_benchmark(config_path)
    overrides = config.validate_overrides("option", {"sleep_ms": sleep_ms, "handler": handler})
    spec = config.build_spec(bench, overrides, port=port)
    resolved = allocators.resolve(allocator, bench.allocators)
    if port_in_use(host, port):
        raise SandboxError(f"port {port} on {host} is in use; stop the other server or pass --port")
    env = build_environ(
        spec.server.settings.to_environ(), resolved.environ(), pymalloc=pymalloc == "on"
    )
    target = "" if port == 3000 and host == "127.0.0.1" else f" --host http://{host}:{port}"
    click.echo(
        f"Serving on http://{host}:{port} under {allocator} "
        f"(handler {spec.server.settings.handler}, SLEEP_MS {spec.server.settings.sleep_ms}); "
        f"drive it from the repository root with: locust --tags medium{target}",
        err=True,
    )
    sys.stdout.flush()
    command = [*server_command(host, port), *(["--expose"] if expose else [])]
    os.execve(sys.executable, command, env)


def _run_with_progress(spec: Any, index: int, total: int) -> Any:
    from sandbox.analysis.groups import label
    from sandbox.cli.progress import run_showing_progress

    name = label(spec.allocator, spec.parameters)
    click.echo(f"\n[{index + 1}/{total}] {name} (repeat {spec.repeat + 1})", err=True)
    result, path = run_showing_progress(spec)
    click.echo(f"  -> {result.status}: {path}", err=True)
    if result.status_detail:
        click.echo(f"     {result.status_detail}", err=True)
    return result, path


def _note(line: str) -> None:
    click.echo(line, err=True)


@cli.command("experiment")
@click.argument("experiment_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@flags.options(flags.EXPERIMENT)
def experiment_cmd(
    experiment_file: Path | None,
    repeats: int | None,
    until_verdict: bool,
    max_repeats: int,
    min_effect: float,
    results_dir: Path | None,
    resume: Path | None,
    config_path: Path | None,
) -> None:
    """Run an experiment (allocators × settings × repeats), then compare and plot it; or, with
    --resume DIR, run what an interrupted or killed one left undone."""
    from sandbox.analysis.sequential import Design
    from sandbox.config import settings as config
    from sandbox.experiment import definition as experiment
    from sandbox.experiment import execution
    from sandbox.measure.thresholds import failed

    ctx = click.get_current_context()
    given = [
        f"--{name.replace('_', '-')}"
        for name in ("repeats", "until_verdict", "max_repeats", "min_effect", "results_dir")
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    ]
    rule_flags = [f for f in given if f in ("--max-repeats", "--min-effect")]
    if (experiment_file is None) == (resume is None):
        raise click.UsageError("give an experiment file, or --resume DIR (one of them)")
    if resume is not None and given:
        raise click.UsageError(
            "--resume runs DIR as it was planned (its manifest keeps the repeats and any "
            f"stopping rule): drop {' and '.join(given)}"
        )
    if until_verdict and repeats is not None:
        raise click.UsageError(
            "--until-verdict decides the repeats: drop --repeats (--max-repeats sets the cap)"
        )
    if rule_flags and not until_verdict:
        verb = "applies" if len(rule_flags) == 1 else "apply"
        raise click.UsageError(f"{' and '.join(rule_flags)} {verb} only with --until-verdict")
    design = Design(max_repeats=max_repeats, min_effect=min_effect) if until_verdict else None
    bench = config.load_benchmark(config_path)
    if resume is not None:
        _sigterm_as_interrupt()
        outcome = execution.resume_experiment(
            resume.resolve(), bench, _run_with_progress, on_note=_note
        )
    else:
        assert experiment_file is not None
        exp = experiment.load_experiment(experiment_file)
        _sigterm_as_interrupt()
        outcome = execution.run_experiment(
            exp,
            bench,
            _run_with_progress,
            repeats=repeats,
            results_dir=results_dir.resolve() if results_dir else None,
            on_note=_note,
            design=design,
        )
    ok = [r for r in outcome.results if r.status == "ok"]
    if not ok:
        click.echo(
            f"Error: no run of {outcome.name} completed; see {outcome.folder}"
            + (
                f"; continue with: sandbox experiment --resume {outcome.folder}"
                if outcome.interrupted
                else ""
            ),
            err=True,
        )
        sys.exit(130 if outcome.interrupted else 1)
    table, plots = execution.report(outcome, baseline=outcome.baseline)
    click.echo("\n" + table)
    click.echo(f"\nresults:    {outcome.folder}/")
    click.echo(f"comparison: {outcome.folder / 'comparison.md'}")
    click.echo(f"report:     {outcome.folder / 'report.html'}")
    for p in plots:
        click.echo(f"plot:       {p}")
    if outcome.stop:
        click.echo(f"stopping rule: {outcome.stop} (looks in {outcome.folder / 'experiment.json'})")
        if outcome.stop_reason == "cap":
            click.echo(
                "  undecided means no verdict: the table's 95 % intervals do not allow for the "
                "looks, so one excluding 1.00 there is not a difference shown at 5 %; to decide, "
                "run it again with a higher --max-repeats"
            )
    for failure in outcome.failures:
        click.echo(f"warning: run failed: {failure}", err=True)
    if outcome.interrupted:
        click.echo(
            "Interrupted; the comparison covers the runs that finished. Continue with: "
            f"sandbox experiment --resume {outcome.folder}",
            err=True,
        )
        sys.exit(130)
    broken = [(r, failed(r.thresholds)) for r in ok]
    broken = [(r, lines) for r, lines in broken if lines]
    if broken:
        for r, lines in broken:
            click.echo(f"Error: threshold failed in {r.run_id}: {'; '.join(lines)}", err=True)
        sys.exit(1)


@cli.command("advise")
@flags.options(flags.ADVISE)
def advise_cmd(
    list_arms: bool,
    arms: str | None,
    budget: float,
    tolerance: float,
    min_rounds: int,
    max_rounds: int,
    experiment_file: Path | None,
    resume: Path | None,
    config_path: Path | None,
    **settings: Any,
) -> None:
    """Race the remedies (allocators, their settings, trims, worker recycling) on this
    workload: interleaved rounds of fresh servers, the clearly worse dropped after each, until
    the best is separated or the budget is spent; then how to deploy the winner."""
    from sandbox.advise import plan, race, render
    from sandbox.config import settings as config

    if list_arms:
        click.echo(plan.listing())
        return
    bench = config.load_benchmark(config_path)
    given = {k: v for k, v in settings.items() if v is not None}
    if resume is not None:
        if given or arms or experiment_file:
            raise click.UsageError("--resume runs DIR as it was planned: drop the other options")
        _sigterm_as_interrupt()
        outcome = race.resume_race(resume.resolve(), bench, _run_with_progress, on_note=_note)
    else:
        if given.get("results_dir"):
            given["results_dir"] = str(Path(given["results_dir"]).resolve())
        overrides = config.validate_overrides("option", given)
        names = [n.strip() for n in arms.split(",") if n.strip()] if arms else None
        race_settings = plan.race_settings(
            bench,
            names=names,
            experiment_file=experiment_file,
            flags=overrides,
            budget_s=budget,
            tolerance=tolerance,
            min_rounds=min_rounds,
            max_rounds=max_rounds,
        )
        for line in race_settings.skipped:
            _note(f"note: {line}")
        _sigterm_as_interrupt()
        outcome = race.start_race(race_settings, bench, _run_with_progress, on_note=_note)
    text = render.note(outcome)
    (outcome.folder / "advice.md").write_text(text + "\n")
    click.echo("\n" + text)
    click.echo(f"\nrace:   {outcome.folder}/ (race.json, experiment.json, advice.md)")
    for failure in outcome.failures:
        click.echo(f"warning: run failed: {failure}", err=True)
    if outcome.interrupted:
        click.echo(
            f"Interrupted; continue with: sandbox advise --resume {outcome.folder}", err=True
        )
        sys.exit(130)


def _stair_lines(result: Any, limit_bytes: int | None) -> list[str]:
    """The run's stair read (what each batch added, levels off or climbing), when it has one."""
    from sandbox.analysis.stair_read import group_lines

    read = group_lines(result.allocator.name, [result], limit_bytes)
    return [*read.lines] if read is not None and result.status == "ok" else []


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
@flags.LIMIT.option
def compare_cmd(
    paths: tuple[Path, ...], baseline: str | None, fmt: str, limit_bytes: int | None
) -> None:
    """Compare runs side by side: per allocator, RSS and latency with ratios and intervals."""
    from sandbox.analysis import compare, report
    from sandbox.results import model as results

    _settle(paths)
    loaded = results.load_all(paths)
    if not loaded:
        raise SandboxError(f"no result files under {', '.join(map(str, paths))}")
    comparison = compare.compare(loaded, baseline=baseline, limit_bytes=limit_bytes)
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
    from sandbox.analysis import plot
    from sandbox.results import model as results

    _settle(paths)
    files = results.find_result_files(paths)
    loaded = results.load_all(paths)
    if not loaded:
        raise SandboxError(f"no result files under {', '.join(map(str, paths))}")
    if out is None:
        out = plot.output_stem(files, view=view, x=x_axis)
    if view == "allocator":
        fig = plot.plot_decomposition(loaded)
    else:
        fig = plot.plot_rss(loaded, x="requests" if x_axis == "requests" else "time")
    for p in plot.save(fig, out, formats=formats or ("png", "svg")):
        click.echo(str(p))


@cli.command("inspect")
@click.argument("pid", type=click.IntRange(min=1))
@click.option("--trim", is_flag=True, help="Ask the allocator for free memory back; show RSS.")
@click.option(
    "--watch",
    "watch_s",
    type=click.FloatRange(min=0, min_open=True),
    help="Look again every --interval for this many seconds, then give a verdict.",
)
@click.option(
    "--interval",
    "interval_s",
    type=click.FloatRange(min=0.2),
    help="Seconds between looks with --watch (default 5).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout (keys below).")
@click.option(
    "--no-attach", is_flag=True, help="Read /proc only: no gdb, the process is never stopped."
)
@click.option(
    "--via",
    type=click.Choice(["auto", "agent", "gdb"]),
    default="auto",
    show_default=True,
    help="Read the counters through the sandbox's agent (never stops the process) or gdb; "
    "auto: the agent when the process has one.",
)
@click.option(
    "--recheck",
    is_flag=True,
    help="Run the preflight on canaries again instead of using its kept verdict.",
)
def inspect_cmd(
    pid: int,
    trim: bool,
    watch_s: float | None,
    interval_s: float | None,
    as_json: bool,
    no_attach: bool,
    via: str,
    recheck: bool,
) -> None:
    """Where the memory of a running process PID is, and whose it is.

    Reads /proc/PID/smaps (anonymous and file-backed RSS; the heap, glibc's arena heaps,
    thread stacks and other mappings: how many, how resident) and which allocator serves
    malloc. Then gdb attaches for a moment and reads, inside the process, the allocator's own
    counters (glibc mallinfo2, jemalloc mallctl stats, tcmalloc MallocExtension, mimalloc
    mi_process_info; in use and held as `sandbox run` counts them) and CPython's (allocated
    blocks, pymalloc arenas). The process is stopped for the attach; the time is shown.

    Before gdb touches the process, the same look runs on two throwaway canaries (one asleep
    in system calls, one busy in floating-point and vector work that checks its results),
    under the process's own interpreter and allocator: if either dies, gets an error it did
    not ask for or computes a wrong value, inspect refuses and never attaches. A gdb older
    than 14 is refused outright on CPUs whose register state it cannot restore (AMX). The
    verdict is kept per host, gdb and interpreter (--recheck runs it again). A process
    started by `sandbox run` is read through its agent instead: no attach at all.

    --trim asks the allocator for free memory back (malloc_trim(0), jemalloc
    arena.4096.purge, tcmalloc ReleaseFreeMemory, mimalloc mi_collect) and reports RSS just
    before and after. --watch SECONDS looks every --interval and ends with a verdict in the
    words of `sandbox compare`: live allocations (a leak or a cache), free memory the
    allocator keeps (fragmentation), or memory outside malloc.

    \b
    --json prints one object. A single look ("format": "sandbox-inspect", "version": 1):
      pid, command, taken_at, allocator,
      malloc {family, library, mapped_allocators, ld_preload, owner},
      rss {rss_bytes, anonymous_bytes, file_bytes, swap_bytes, anon_huge_bytes,
           regions [{name, mappings, size_bytes, rss_bytes}]},
      counters {allocator, in_use_bytes, held_bytes, free_kept_bytes, raw, source, note},
      python {version, allocated_blocks, pymalloc {arenas, arena_bytes, allocated_bytes,
              available_bytes, highwater_arenas}, note},
      trim {called, result, rss_before_bytes, rss_after_bytes, returned_bytes,
            held_before_bytes, held_after_bytes},
      stopped_ms, attach_ms, phases_ms {attach, thread, owner, counters, python, ...},
      problem, route (proc|agent|gdb), debugger {path, version, banner, build},
      preflight {passed, failure, summary, checked_at, took_s, cached, canaries [...]}
    A watch ("format": "sandbox-inspect-watch"): pid, duration_s, interval_s, interrupted,
      samples [{t_s, snapshot}], growth {duration_s, rss_bytes, in_use_bytes, held_bytes,
      free_kept_bytes, outside_bytes, pymalloc_bytes, pymalloc_used_bytes}, verdict,
      stopped_ms {median, max, n}
    What could not be read is null. Exit 1 when the process is gone, may not be traced, gdb
    is missing or the allocator is not recognised (the RSS split is still printed).
    """
    import functools
    import json

    from sandbox.errors import InspectError
    from sandbox.inspector import inspection, preflight, render
    from sandbox.inspector import watch as watching

    if interval_s is not None and watch_s is None:
        raise click.UsageError("--interval goes with --watch")
    if trim and watch_s is not None:
        raise click.UsageError("--trim and --watch do not go together; trim after the watch")
    if no_attach and trim:
        raise click.UsageError("--trim needs to attach; drop --no-attach")
    if no_attach and via != "auto":
        raise click.UsageError("--via reads counters; drop --no-attach")
    if recheck:
        preflight.forget()
    take = functools.partial(inspection.take, via=via)
    if watch_s is None:
        snapshot = take(pid, attach=not no_attach, trim=trim)
        click.echo(json.dumps(snapshot.to_dict()) if as_json else render.snapshot_text(snapshot))
        problem = snapshot.problem
    else:
        shown = None if as_json else (lambda s: click.echo(render.sample_line(s)))
        result = watching.watch(
            pid, watch_s, interval_s or 5.0, attach=not no_attach, on_sample=shown, take=take
        )
        click.echo(json.dumps(result.to_dict()) if as_json else render.watch_end(result))
        problem = next((s.snapshot.problem for s in result.samples if s.snapshot.problem), None)
    if problem:
        raise InspectError(problem)


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

    written = html.write_report(list(paths), out, baseline=baseline)
    click.echo(str(written))


def main() -> None:
    cli(prog_name="sandbox")
