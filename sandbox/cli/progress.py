"""Terminal output for a run: a live progress line, and the closing summary."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import click

from sandbox.config.run_spec import RunSpec
from sandbox.load.models import LoadModel
from sandbox.measure import runner
from sandbox.measure.loop import Progress
from sandbox.results.model import RunResult
from sandbox.results.releases import CollectionInfo
from sandbox.results.sampling import AgentProcess, PeriodicTrim
from sandbox.units import mib


def run_showing_progress(spec: RunSpec) -> tuple[RunResult, Path]:
    """`runner.run_once` with a progress line on stderr, closed on every exit path."""
    line = ProgressLine(sys.stderr)
    try:
        return runner.run_once(spec, on_progress=line.update, on_notice=line.notice)
    finally:
        line.close()


class ProgressLine:
    """On a terminal, one line rewritten in place; elsewhere, a line per phase change."""

    def __init__(self, stream: TextIO, min_interval_s: float = 0.5) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.min_interval_s = min_interval_s
        self._last_phase = ""
        self._last_at = 0.0
        self._width = 0

    def update(self, p: Progress) -> None:
        now = time.monotonic()
        changed = p.phase != self._last_phase
        if not changed and now - self._last_at < self.min_interval_s:
            return
        self._last_at = now
        phase = p.phase if not p.phase.startswith("batch-") else f"batch {p.batch}/{p.batches}"
        rss = mib(p.rss_bytes) if p.rss_bytes else "-"
        text = f"[{p.elapsed_s:6.1f} s] {phase:<12} RSS {rss:>11}  "
        if p.requests_done >= 0:  # -1: nobody counts them (the server has no /stats, no Locust)
            text += f"requests {p.requests_done:>7}  {p.rps:6.1f} req/s"
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
            self.stream.flush()
        elif changed:
            self.stream.write(text + "\n")
            self.stream.flush()
        self._last_phase = p.phase

    def notice(self, text: str) -> None:
        """One line of its own (`note: ...`), above the progress line on a terminal."""
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
            self._last_phase = ""  # redraw the progress line at the next update
        self.stream.write(f"note: {text}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()


def describe_model(model: LoadModel) -> str:
    pace = round(model.pace(), 6)  # as the result file records it
    per_user = f", {pace:.3g} req/s per user" if pace else ""
    return model.describe() + per_user


def periodic_trim_line(processes: Sequence[AgentProcess]) -> str | None:
    """The agents' periodic trims in one line (how many, how long each took on average and at
    most); None when no process made one."""
    made = [p.periodic_trim for p in processes if p.periodic_trim and p.trims]
    trims = PeriodicTrim.combined(made)
    if trims is None:
        return None
    where = f" in {len(made)} processes" if len(made) > 1 else ""
    return trims.describe(where)


def collection_line(collection: CollectionInfo) -> str:
    """The full garbage collection in one line: unreachable objects found, what it freed of
    malloc's in use (and of pymalloc's objects, when read), RSS, how long."""
    freed = collection.freed
    parts = []
    if freed.in_use_bytes is not None:
        parts.append(f"{mib(freed.in_use_bytes)} of malloc's in use")
    if freed.pymalloc_used_bytes is not None:
        parts.append(f"{mib(freed.pymalloc_used_bytes)} of pymalloc's objects")
    what = " and ".join(parts) or "(the allocator does not count what it freed)"
    where = f" in {len(collection.processes)} processes" if len(collection.processes) > 1 else ""
    return (
        f"a full collection{where} found {collection.unreachable:,} unreachable objects and "
        f"freed {what} (RSS {_signed_mib(-freed.rss_bytes)}), in {collection.collect_ms:.0f} ms"
    )


def _signed_mib(value: int) -> str:
    """`+1.2 MiB` or `−3.4 MiB` (a minus sign, not a hyphen)."""
    text = mib(abs(value))
    return f"−{text}" if value < 0 else f"+{text}"


def print_run_summary(result: RunResult, path: Path, extra: Sequence[str] = ()) -> None:
    """The closing summary: allocator, RSS figures, per-batch load, `extra` lines (the stair
    read), the file and what next."""
    s = result.summary
    a = result.allocator
    lib = f"{a.library} (verified mapped)" if a.library else "glibc malloc (nothing preloaded)"
    env = " ".join(f"{k}={v}" for k, v in a.env.items())
    duration = result.samples["t_s"][-1] if result.samples.get("t_s") else 0.0
    click.echo(f"\nrun {result.run_id}: {result.status} after {duration:.0f} s")
    click.echo(f"  allocator  {a.name}: {lib}{'  ' + env if env else ''}")
    click.echo(
        f"  RSS        baseline {mib(s.baseline_rss_bytes)}   peak {mib(s.peak_rss_bytes)}   "
        f"end of load {mib(s.end_of_load_rss_bytes)}   after idle {mib(s.after_idle_rss_bytes)}"
    )
    if s.peak_pss_bytes is not None:
        processes = int(max(result.samples.get("processes") or [0]))
        click.echo(
            f"  PSS (sum)  baseline {mib(s.baseline_pss_bytes)}   peak {mib(s.peak_pss_bytes)}   "
            f"after idle {mib(s.after_idle_pss_bytes)}   ({processes} processes; the RSS "
            "above is their sum, counting shared pages once per process)"
        )
    elif s.vmhwm_bytes:
        ratio = s.peak_rss_bytes / s.vmhwm_bytes
        click.echo(f"  VmHWM      {mib(s.vmhwm_bytes)} (sampled peak is {ratio:.1%} of it)")
    load = result.load.spec
    if load.model.name != "iterations":
        workers = f", {load.workers} Locust workers" if load.workers else ""
        click.echo(f"  load       {describe_model(load.model)}{workers}")
    for b in result.load.stats:
        click.echo(
            f"  batch {b.index}    {b.requests} requests, {b.failures} failed, {b.rps:.1f} req/s, "
            f"p50 {b.p50_ms:.0f} ms, p95 {b.p95_ms:.0f} ms, p99 {b.p99_ms:.0f} ms"
        )
    for c in result.thresholds:
        verdict = {True: "pass", False: "FAIL", None: "no figure"}[c.passed]
        value = "-" if c.value is None else f"{c.value:.4g}"
        click.echo(
            f"  threshold  {c.name} <= {c.limit:.4g} {c.unit or ''}: {value} {verdict}"
            if c.name != "min_rps"
            else f"  threshold  min_rps >= {c.limit:.4g}: {value} {verdict}"
        )
    harness = result.sampler.harness_rss_bytes
    if harness:
        click.echo(f"  harness    {mib(harness)} RSS (this process, at the end)")
    if result.status_detail:
        click.echo(f"  note       {result.status_detail}")
    if result.trim and result.trim.done and s.after_trim_rss_bytes:
        freed = s.after_idle_rss_bytes - s.after_trim_rss_bytes
        asked = len(result.trim.processes)
        where = f" ({result.trim.called} in {asked} processes)" if asked > 1 else ""
        click.echo(
            f"  trim       RSS {mib(s.after_trim_rss_bytes)} after trim: {mib(freed)} "
            f"given back{where}"
        )
    if result.collection is not None:
        click.echo(f"  gc         {collection_line(result.collection)}")
    periodic = periodic_trim_line(result.sampler.agents)
    if periodic:
        click.echo(f"  periodic   {periodic}")
    if s.held_after_idle_bytes is not None:
        in_use = mib(s.in_use_after_idle_bytes)
        click.echo(
            f"  allocator  after idle: holds {mib(s.held_after_idle_bytes)}, in use {in_use}, "
            f"held but unused {mib(s.unused_after_idle_bytes)}"
        )
    for moment, top in result.objects.items():
        names = ", ".join(f"{o.type} {mib(o.total_bytes)}" for o in top.types[:3])
        click.echo(f"  objects    {moment}: {names}")
    p = result.profile
    if p:
        for key, said in (
            ("flamegraph", p.flamegraph),
            ("stats", p.stats),
            ("error", p.error),
            ("flamegraph_error", p.flamegraph_error),
        ):
            if said is not None:
                click.echo(f"  memray     {key}: {said}")
    for line in extra:
        click.echo(line)
    click.echo(f"result: {path}")
    click.echo(f"next:   sandbox plot {path}")


def run_numbered(spec: RunSpec, index: int, total: int) -> tuple[RunResult, Path]:
    """One run of many (an experiment's, a race's), numbered, with its progress line."""
    from sandbox.analysis.groups import label

    name = label(spec.allocator, spec.parameters)
    click.echo(f"\n[{index + 1}/{total}] {name} (repeat {spec.repeat + 1})", err=True)
    result, path = run_showing_progress(spec)
    click.echo(f"  -> {result.status}: {path}", err=True)
    if result.status_detail:
        click.echo(f"     {result.status_detail}", err=True)
    return result, path


def note(line: str) -> None:
    """A line about the runs (a look of the stopping rule, a resume), on stderr."""
    click.echo(line, err=True)
