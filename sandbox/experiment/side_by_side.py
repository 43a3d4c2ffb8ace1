"""Runs side by side: several of an experiment's runs at once, each in a child process of its
own, as `sandbox run` run that many times in parallel would.

A run is a fresh server, its load and its sampler, and it spends most of its time asleep (the
handler's SLEEP_MS, the pauses between batches, the idle phase), so on a small machine a few at
once take about as long as one (docs/evidence.md, section 14, measures how many can share these
2 cores before the answer moves). The children are spawned (not forked: the parent may hold
threads), each in a process group of its own so that the terminal's Ctrl-C reaches the parent
only; the parent passes one SIGINT on to every child still running, so each ends its run as
interrupted and writes its partial result, as a run in the foreground does. Each child's lines on
stderr carry the run's number, and it sends back its result file's path or the error that
stopped it.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Literal, TextIO

from sandbox.config.run_spec import RunSpec
from sandbox.errors import SandboxError
from sandbox.results import storage
from sandbox.results.model import RunResult

RunFn = Callable[[RunSpec, int, int], tuple[RunResult, Path]]
Kind = Literal["ok", "failed", "write-failed", "interrupted", "crashed"]

STOP_WAIT_S = 120.0
"""How long, after passing an interrupt on, to wait for a child to write its partial result
(a run stops its load and server, then saves: seconds, unless a trim is in progress)."""
POLL_S = 0.2
"""How often the parent, waiting for its children, looks up (and so hears a signal)."""


@dataclass(frozen=True)
class Job:
    spec: RunSpec
    index: int
    """The run's place in the plan (0-based), as `run(spec, index, total)` takes it."""
    total: int


@dataclass(frozen=True)
class Finished:
    """What became of one job."""

    job: Job
    kind: Kind
    path: Path | None = None
    """The result file (kind ok), or the fallback copy of one that could not be saved where it
    belonged (kind write-failed)."""
    error: str = ""


class PrefixedLines(io.TextIOBase):
    """A text stream that writes whole lines to `out`, each after `prefix` (unless it starts with
    it), and drops empty ones; not a terminal, so a
    progress line prints a line per phase instead of rewriting one line in place."""

    def __init__(self, out: TextIO, prefix: str) -> None:
        self._out = out
        self._prefix = prefix
        self._pending = ""

    def write(self, s: str) -> int:
        self._pending += s
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            line = line.lstrip("\r")
            if line.strip():  # a line that names its run already keeps its own name
                prefix = "" if line.startswith(self._prefix) else self._prefix
                self._out.write(f"{prefix}{line}\n")
        self._out.flush()
        return len(s)

    def flush(self) -> None:
        self._out.flush()

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        if self._pending.strip():
            self.write("\n")
        super().close()


INTERRUPTED = "interrupted before its result was written"


def attempt(run: RunFn, job: Job) -> tuple[Finished, RunResult | None]:
    """One run and what became of it, with its result when it wrote one: what a run in the
    foreground and a run in a child both report, read by the experiment the same way."""
    try:
        result, path = run(job.spec, job.index, job.total)
    except storage.ResultWriteError as exc:  # a full disk: the next runs would fail too
        return Finished(job, "write-failed", exc.written_to, str(exc)), None
    except SandboxError as exc:  # this run could not start
        return Finished(job, "failed", None, str(exc)), None
    except KeyboardInterrupt:
        return Finished(job, "interrupted", None, INTERRUPTED), None
    return Finished(job, "ok", path), result


def _child(run: RunFn, job: Job, conn: Connection) -> None:
    """In the child: one run, its outcome sent back as (kind, path, error)."""
    os.setpgrp()  # the terminal's Ctrl-C goes to the parent, which passes on exactly one
    sys.stderr = PrefixedLines(sys.stderr, f"[{job.index + 1}/{job.total}] ")
    try:
        done, _ = attempt(run, job)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # its outcome is settled: nothing to stop
        conn.send((done.kind, str(done.path) if done.path else None, done.error))
    except KeyboardInterrupt:  # between the run's end and ignoring the signal
        conn.send(("interrupted", None, INTERRUPTED))
    finally:
        sys.stderr.flush()
        conn.close()


def run_side_by_side(run: RunFn, jobs: Sequence[Job]) -> tuple[list[Finished], bool]:
    """Run every job at once, each in a child; wait for all of them. Returns each job's outcome
    in job order, and whether the parent was interrupted (Ctrl-C, or SIGTERM turned into one):
    then every child still running was interrupted too and has finished."""
    ctx = multiprocessing.get_context("spawn")
    started = []
    for job in jobs:
        mine, theirs = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(run, job, theirs), daemon=False)
        proc.start()
        theirs.close()
        started.append((job, proc, mine))
    interrupted = False
    try:
        for _, proc, _ in started:
            while proc.is_alive():  # a short wait at a time: a signal then interrupts it at once
                proc.join(POLL_S)
    except KeyboardInterrupt:
        interrupted = True
        _interrupt_all([proc for _, proc, _ in started])
    return [_finished(job, proc, conn) for job, proc, conn in started], interrupted


def _interrupt_all(procs: Sequence[multiprocessing.process.BaseProcess]) -> None:
    """One SIGINT to every child still running, then wait for them; a second interrupt of the
    parent passes a second SIGINT on (a run stops at once then, as on a second Ctrl-C)."""
    for attempt in range(2):
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                    os.kill(proc.pid, signal.SIGINT)
        try:
            for proc in procs:
                proc.join(STOP_WAIT_S)
            break
        except KeyboardInterrupt:
            if attempt == 1:
                raise
    for proc in procs:  # still running after STOP_WAIT_S: its partial result is lost
        if proc.is_alive():
            proc.kill()
            proc.join()


def _finished(job: Job, proc: multiprocessing.process.BaseProcess, conn: Connection) -> Finished:
    """The job's outcome from what its child sent, or from how it ended when it sent nothing."""
    if conn.poll():
        try:
            kind, path, error = conn.recv()
        except (EOFError, OSError):
            pass
        else:
            return Finished(job, kind, Path(path) if path else None, error)
    code = proc.exitcode
    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    return Finished(job, "crashed", None, f"the run's harness process ended ({how}) with no result")
