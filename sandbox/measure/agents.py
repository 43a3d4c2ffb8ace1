"""The server's agents as a run uses them: which processes have one, their counters at each probe,
and the trim phase asked of each.

`AgentProbe.read` asks every process of the server for one `memory` snapshot, within a budget
(a slow or stopped agent must not hold up the probe that watches for a hung server), and returns
the probe's allocator columns: sums over the processes, and per-process columns by label.

What a missing answer becomes, so that no figure is made up and the sums stay comparable over
time (the same rule the probe applies to RSS and PSS):
- an agent that answers late, wrongly or not at all this tick, in a process still there: that
  process's last figures are carried (counted as a failure, and noted in the result);
- a process that has gone (its socket refuses): it leaves the sums, its columns read 0;
- a process that never had an agent (not Python; `python -I`, `-E` or `-S`): it is in no sum and
  has no column; the result names it;
- a counter the allocator does not keep (mimalloc's in-use bytes): not summed for that process;
  a sum no process gave is None, so the column is left out, not filled with zeros.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import psutil

from sandbox.measure.agent_client import (
    AgentError,
    CollectResult,
    MemorySnapshot,
)
from sandbox.results.releases import (
    CollectedState,
    CollectionInfo,
    ProcessCollection,
    ProcessTrim,
    TrimAnswer,
    TrimInfo,
)
from sandbox.results.sampling import AgentProcess, PeriodicTrim
from sandbox.results.shapes import Mismatch, from_plain

Answer = TypeVar("Answer")
Part = TypeVar("Part")

SUMS = (
    "alloc_in_use_bytes",
    "alloc_held_bytes",
    "alloc_active_bytes",
    "py_allocated_blocks",
    "pymalloc_used_bytes",
    "pymalloc_free_bytes",
    "pymalloc_arena_bytes",
    "pymalloc_blocks",
)
"""The probe's allocator columns, summed over the server's processes. alloc_active_bytes is
jemalloc's stats.active (pages of live slabs: what Redis's allocator_frag_ratio divides by
stats.allocated); pymalloc's are from its report: used = in blocks handed out to objects, arena =
its arenas' span (mapped by pymalloc itself, outside every allocator counter), free = arena -
used (free blocks, empty pools, headers), blocks = its blocks in use (its share of
py_allocated_blocks). None of them when pymalloc is off."""
PER_PROCESS = (
    "alloc_in_use_bytes",
    "alloc_held_bytes",
    "pymalloc_used_bytes",
    "pymalloc_free_bytes",
    "pymalloc_arena_bytes",
)
"""Those that also get a column per process (`alloc_held_bytes_w1`, ...)."""
NO_AGENT_ENV = "SANDBOX_NO_AGENT"
"""Set to 1 in the harness's environment to start the server without the agent: only for
measuring what the agent costs (benchmarks/agent_overhead.py); the run then has no allocator
counters and no trim."""

Labelled = Sequence[tuple[str, int]]
"""(label, pid) of each server process: main, w1, w2, ..., tracker."""


def agent_disabled(environ: dict[str, str] | None = None) -> bool:
    """True when NO_AGENT_ENV asks for a server without the agent."""
    return (os.environ if environ is None else environ).get(NO_AGENT_ENV, "") not in ("", "0")


class Agents(Protocol):
    """What the run asks of the agents (`agent_client.AgentClient`)."""

    def snapshot(
        self,
        pid: int,
        *,
        gc_objects: bool = False,
        timeout_s: float | None = None,
        fresh: bool = False,
    ) -> MemorySnapshot | None: ...

    def trim(self, pid: int, timeout_s: float = ...) -> TrimAnswer | None: ...

    def collect(self, pid: int, timeout_s: float = ...) -> CollectResult | None: ...


def _counters(snap: MemorySnapshot) -> dict[str, int | None]:
    py = snap.pymalloc
    return {
        "alloc_in_use_bytes": snap.in_use_bytes,
        "alloc_held_bytes": snap.held_bytes,
        "alloc_active_bytes": snap.raw.get("stats.active")
        if snap.allocator == "jemalloc"
        else None,
        "py_allocated_blocks": snap.python.allocated_blocks,
        "pymalloc_used_bytes": None if py is None else py.used_bytes,
        "pymalloc_free_bytes": None if py is None else py.arena_bytes - py.used_bytes,
        "pymalloc_arena_bytes": None if py is None else py.arena_bytes,
        "pymalloc_blocks": None if py is None else py.blocks,
    }


@dataclass
class _Seen:
    """One process, as the probe has seen it so far."""

    label: str
    pid: int
    name: str | None
    last: dict[str, int | None] | None = None
    """Its latest counters; None while it has no (answering) agent, or once it has gone."""
    answered: int = 0
    failed: int = 0
    error: str | None = None
    periodic_trim: PeriodicTrim | None = None
    """The latest extra["periodic_trim"] its agent sent (its periodic trims so far)."""


def _process_name(pid: int) -> str | None:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return None


class AgentProbe:
    """Reads every server process's agent once per probe; remembers who answered."""

    def __init__(
        self,
        agents: Agents,
        budget_s: float,
        *,
        timeout_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        name_of: Callable[[int], str | None] = _process_name,
    ) -> None:
        self.agents = agents
        self.budget_s = budget_s
        """The most one probe spends on agents; processes not reached in it are carried."""
        self.timeout_s = budget_s if timeout_s is None else timeout_s
        """The most one agent gets to answer (less when less of the budget is left)."""
        self.clock = clock
        self.name_of = name_of
        self._seen: dict[int, _Seen] = {}
        self._lock = threading.Lock()
        """Guards `_seen`: the probe thread adds to it, the run's thread reads it."""

    def _all(self) -> list[_Seen]:
        with self._lock:
            return list(self._seen.values())

    def _ask(self, seen: _Seen, left_s: float, fresh: bool = False) -> None:
        """Ask one process, within what is left of the probe's budget (`left_s`)."""
        if left_s <= 0:
            seen.failed += seen.last is not None
            seen.error = seen.error or "not asked: the probe's time for agents was spent"
            return
        try:
            snap = self.agents.snapshot(
                seen.pid, timeout_s=min(self.timeout_s, left_s), fresh=fresh
            )
        except AgentError as exc:
            seen.failed += 1
            seen.error = seen.error or str(exc)
            return  # carried: the process is still there
        if snap is None:
            seen.last = None  # no agent, or gone
        else:
            seen.answered += 1
            seen.last = _counters(snap)
            trims = snap.extra.get("periodic_trim")
            if trims is not None:
                # one this harness cannot read keeps the last good one
                with contextlib.suppress(Mismatch):
                    seen.periodic_trim = from_plain(PeriodicTrim, trims)

    def read(
        self, processes: Labelled, *, per_process: bool, fresh: bool = False
    ) -> dict[str, float | None]:
        """The allocator columns now: sums (None when no process gave that counter) and, if
        asked, `<counter>_<label>` for each process with an agent."""
        deadline = self.clock() + self.budget_s
        row: dict[str, float | None] = dict.fromkeys(SUMS)
        for label, pid in processes:
            seen = self._seen.get(pid)
            if seen is None:
                seen = _Seen(label, pid, self.name_of(pid))
                with self._lock:
                    self._seen[pid] = seen
            self._ask(seen, deadline - self.clock(), fresh)
            if seen.last is None:
                continue
            for name in SUMS:
                value = seen.last[name]
                if value is not None:
                    row[name] = (row[name] or 0) + value
            if per_process:
                for name in PER_PROCESS:
                    if seen.last[name] is not None:
                        row[f"{name}_{label}"] = seen.last[name]
        listed = {pid for _, pid in processes}
        for seen in self._all():
            if seen.pid not in listed:
                seen.last = None  # gone from the tree: out of the sums from now on
        return row

    def answering(self) -> list[tuple[str, int]]:
        """(label, pid) of the processes whose agent gave figures at the latest probe (or
        before it, if it missed that one), in the order seen."""
        return [(s.label, s.pid) for s in self._all() if s.last is not None]

    def processes(self) -> list[AgentProcess]:
        """Every process seen, in the order seen, with what its agent answered."""
        return [
            AgentProcess(
                label=s.label,
                pid=s.pid,
                name=s.name,
                agent=s.answered > 0,
                answered=s.answered,
                failed=s.failed,
                error=s.error,
                periodic_trim=s.periodic_trim,
            )
            for s in self._all()
        ]


def looks_like_python(pid: int) -> bool:
    """True when the process runs a Python interpreter: its executable is named python* or it
    maps a libpython (an embedding program, a venv's copied binary)."""
    try:
        if os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith("python"):
            return True
        with open(f"/proc/{pid}/maps", errors="replace") as maps:
            return "/libpython" in maps.read()
    except OSError:
        return False


def wait_for_agents(
    hello: Callable[[int], object | None],
    processes: Callable[[], Labelled],
    timeout_s: float,
    *,
    is_python: Callable[[int], bool] = looks_like_python,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> set[int]:
    """Before sampling starts: wait (at most `timeout_s`) until every Python process of the
    server has an agent answering `hello`, so that the probe's first row, which fixes its
    columns, has every process in it. Processes that are not Python are not waited for.
    Returns the pids whose agent answered."""
    deadline = clock() + timeout_s
    ready: set[int] = set()
    while True:
        waiting = [pid for _, pid in processes() if pid not in ready and is_python(pid)]
        for pid in waiting:
            try:
                answered = hello(pid) is not None
            except AgentError:
                answered = False  # starting, or busy: ask again
            if answered:
                ready.add(pid)
        if all(pid in ready for pid in waiting) or clock() >= deadline:
            return ready
        sleep(0.05)


def _described(p: AgentProcess) -> str:
    return f"{p.label} (pid {p.pid}{': ' + p.name if p.name else ''})"


def agent_notes(processes: Sequence[AgentProcess], *, injected: bool, ok: bool = True) -> list[str]:
    """One line each: no agent anywhere, processes without one, agents that missed probes (only
    for a run that is otherwise ok: a server that died or hung misses them for that reason)."""
    if not injected:
        return [
            f"the agent was left out ({NO_AGENT_ENV}=1): no allocator counters and no trim, "
            "RSS only"
        ]
    if not processes:
        return []
    without = [p for p in processes if not p.agent]
    if len(without) == len(processes):
        return [
            "no process of the server had an agent (not Python, or started with python -I, "
            "-E or -S): no allocator counters and no trim, RSS only"
        ]
    notes = []
    if without:
        names = ", ".join(_described(p) for p in without)
        whose = "its" if len(without) == 1 else "their"
        notes.append(
            f"no agent in {names}: the allocator counters leave out {whose} memory (RSS has it)"
        )
    for p in processes if ok else ():
        if p.failed:
            notes.append(
                f"the agent of {_described(p)} missed {p.failed} of {p.answered + p.failed} "
                f"probes; its last figures were carried (first: {p.error})"
            )
    return notes


def trim_each(
    agents: Agents, processes: Labelled, clock: Callable[[], float] = time.perf_counter
) -> tuple[TrimInfo | None, list[str]]:
    """Ask each process's allocator for its free memory back, one after another: the trim
    section (None when no process had an agent to ask) and a note per agent that failed."""
    started = clock()
    done, notes = _ask_each(processes, agents.trim, _trim, "trim")
    if not done:
        return None, notes
    return TrimInfo.over(done, took_ms=round((clock() - started) * 1000, 3)), notes


def collect_each(
    agents: Agents, processes: Labelled, clock: Callable[[], float] = time.perf_counter
) -> tuple[CollectionInfo | None, list[str]]:
    """Run a full garbage collection in each process, one after another: the collection section
    (None when no process had an agent to ask) and a note per agent that failed."""
    started = clock()
    done, notes = _ask_each(processes, agents.collect, _collection, "garbage collection")
    if not done:
        return None, notes
    return CollectionInfo.over(done, took_ms=round((clock() - started) * 1000, 3)), notes


def _ask_each(
    processes: Labelled,
    ask: Callable[[int], Answer | None],
    section: Callable[[str, int, Answer], Part],
    what: str,
) -> tuple[list[Part], list[str]]:
    """Ask each process in turn (`ask(pid)`), making each answer its part of a section; an
    agent that fails gets a note naming `what` failed, and the others are still asked."""
    done: list[Part] = []
    notes: list[str] = []
    for label, pid in processes:
        try:
            answer = ask(pid)
        except AgentError as exc:
            notes.append(f"{what} of {label} (pid {pid}) failed: {exc}")
            continue
        if answer is not None:
            done.append(section(label, pid, answer))
    return done, notes


def _trim(label: str, pid: int, answer: TrimAnswer) -> ProcessTrim:
    return ProcessTrim(label, answer)


def _collection(label: str, pid: int, answer: CollectResult) -> ProcessCollection:
    return ProcessCollection(
        label=label,
        pid=pid,
        unreachable=answer.unreachable,
        counts_before=list(answer.counts_before),
        generations=[dict(g) for g in answer.generations],
        garbage=answer.garbage,
        before=CollectedState.of(answer.before, answer.pymalloc_used.before),
        after=CollectedState.of(answer.after, answer.pymalloc_used.after),
        freed=answer.freed,
        collect_ms=answer.collect_ms,
        took_ms=answer.took_ms,
    )
