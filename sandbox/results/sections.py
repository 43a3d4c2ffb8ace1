"""The smaller sections of a result file, typed: host, harness, sampler (with the server's
agents), trim, garbage collection, objects, profile and threshold checks. Each is written and read
by `shapes` (`to_plain`, `from_plain`): the keys the current format writes, and every older
format read back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sandbox.results.shapes import omitted_when_none, read_also
from sandbox.system import liveness


@dataclass(frozen=True)
class HostInfo:
    """The machine and software the run happened on (None: not known, or an older file)."""

    hostname: str | None = None
    python: str | None = None
    """Python version of the harness (and of the stair-stepper it started)."""
    python_implementation: str | None = None
    glibc: str | None = None
    """glibc version, e.g. 2.36."""
    kernel: str | None = None
    machine: str | None = None
    cpu_count: int | None = None
    memory_total_bytes: int | None = None
    sandbox_version: str | None = field(default=None, metadata=read_also("sandbox"))
    """Read from `sandbox` in files before format 1 settled."""
    packages: dict[str, str | None] = field(default_factory=dict)
    """Versions of the packages that shape a run (starlette, uvicorn, locust, ...)."""
    git_commit: str | None = None
    git_dirty: bool | None = None
    """True when tracked files differed from the commit."""


@dataclass(frozen=True)
class HarnessInfo:
    """The harness process that ran the run (format 4 and later): a checkpoint whose harness no
    longer runs is marked `harness-died`. The start time tells a reused pid from the harness."""

    pid: int
    start_ticks: int | None = None
    """When it started, in clock ticks since boot (/proc/PID/stat field 22)."""
    boot_id: str | None = None
    """The boot it ran in (/proc/sys/kernel/random/boot_id)."""
    hostname: str | None = None


def running_harness() -> HarnessInfo:
    """The running process, as a run records its harness."""
    me = liveness.this_process()
    return HarnessInfo(
        pid=me.pid, start_ticks=me.start_ticks, boot_id=me.boot_id, hostname=me.hostname
    )


@dataclass(frozen=True)
class SamplerInfo:
    """How memory was sampled."""

    interval_s: float
    """Seconds between RSS samples."""
    probe_interval_s: float | None = None
    """Seconds between probes (USS/PSS and the server's own counters)."""
    source: str = ""
    """What the figures come from."""
    decimation: int = 1
    """How many raw samples each stored one stands for (long runs are thinned)."""
    peak_rss_bytes: int | None = None
    """The highest RSS of every raw sample, stored or not."""
    harness_rss_bytes: int | None = None
    """The measuring process's own RSS at the end."""
    harness_peak_rss_bytes: int | None = None
    """The measuring process's peak RSS (ru_maxrss)."""
    agent_injected: bool | None = None
    """True when the agent was put into the server's environment (format 4 and later); False when
    it was left out on purpose (SANDBOX_NO_AGENT=1); None in older files (the counters came
    from the stair-stepper's GET /debug/memory)."""
    agents: list[AgentProcess] = field(default_factory=list)
    """Each server process the probe saw, and what its agent answered (format 4 and later)."""


@dataclass(frozen=True)
class PeriodicTrim:
    """One process's periodic trims so far, as its agent counts them."""

    every_s: float
    """The period asked for."""
    count: int = 0
    """Trims done."""
    called: str | None = None
    """What the last one called, e.g. `malloc_trim(0)`; None when the allocator has nothing to
    call (nothing was released)."""
    total_ms: float = 0.0
    """Their durations added up."""
    max_ms: float = 0.0
    """The longest."""
    last_ms: float | None = None
    """The latest (None before the first)."""

    @classmethod
    def combined(cls, trims: Sequence[PeriodicTrim]) -> PeriodicTrim | None:
        """Several processes' (or runs') trims as one: counts and durations added, the longest
        of all; None when none made a trim."""
        made = [t for t in trims if t.count > 0]
        if not made:
            return None
        return cls(
            every_s=made[0].every_s,
            count=sum(t.count for t in made),
            called=next((t.called for t in made if t.called), None),
            total_ms=sum(t.total_ms for t in made),
            max_ms=max(t.max_ms for t in made),
        )

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.count if self.count else 0.0

    def describe(self, where: str = "") -> str:
        """`N trims (what, every S s<where>), each X ms on average, longest Y ms`."""
        what = self.called or "nothing to call under this allocator"
        count = "1 trim" if self.count == 1 else f"{self.count} trims"
        took = (
            f"{self.mean_ms:.1f} ms"
            if self.count == 1
            else f"each {self.mean_ms:.1f} ms on average, longest {self.max_ms:.1f} ms"
        )
        return f"{count} ({what}, every {self.every_s:g} s{where}), {took}"


@dataclass(frozen=True)
class AgentProcess:
    """One server process as the probe saw it: whether it had an agent, how often it answered."""

    label: str
    """main, w1, w2, ..., tracker: as in the per-process probe columns."""
    pid: int
    name: str | None = None
    """The process's name (psutil), e.g. python3.11 or sh."""
    agent: bool = False
    """An agent answered in this process at least once."""
    answered: int = 0
    """Probes its agent answered."""
    failed: int = 0
    """Probes it did not answer in time, or answered wrongly (its last figures were carried)."""
    error: str | None = None
    """The first failure, in words."""
    periodic_trim: PeriodicTrim | None = field(default=None, metadata=omitted_when_none())
    """Its agent's periodic trims (SANDBOX_AGENT_TRIM_EVERY_S), as its last answer gave them
    (format 5, added later); None when its agent runs no periodic trim."""

    @property
    def trims(self) -> int:
        """Periodic trims done (0 without a periodic trim)."""
        return self.periodic_trim.count if self.periodic_trim else 0


@dataclass(frozen=True)
class Released:
    """What a trim gave back: before minus after."""

    held_bytes: int | None
    rss_bytes: int | None


@dataclass(frozen=True)
class ProcessTrim:
    """What asking one server process's allocator for its free memory back did."""

    label: str
    """main, w1, w2, ...: as in the per-process probe columns."""
    pid: int
    called: str | None
    """The allocator function called, e.g. `malloc_trim(0)`; None when it has none."""
    result: int | None
    """What that function returned (None for void functions)."""
    before: dict[str, Any]
    """The allocator's snapshot (allocator, library, in_use_bytes, held_bytes, raw counters,
    note) and rss_bytes, before."""
    after: dict[str, Any]
    """The same, after."""
    released: Released
    took_ms: float


@dataclass(frozen=True)
class TrimInfo:
    """The trim phase: what was called in the server, and what that released.

    From format 4, every process with an agent is asked (`processes`), and the top-level
    figures are over them: `before`/`after` hold the sums of rss_bytes, held_bytes and
    in_use_bytes (None when a process lacked it) and `released` their differences. Older files
    hold the single answer of the stair-stepper's POST /debug/trim and no `processes`.
    """

    called: str | None
    """The allocator function called, e.g. `malloc_trim(0)` (the calls, comma-separated, if
    processes differed); None when the allocator has none: nothing was released."""
    result: int | None
    """What that function returned, with one process (None for void functions, or several)."""
    before: dict[str, Any]
    """The server's memory state before (from format 4: sums over `processes`)."""
    after: dict[str, Any]
    """The same, after."""
    released: Released
    took_ms: float
    """How long asking took (from format 4: every process, one after another)."""
    processes: list[ProcessTrim] = field(default_factory=list)
    """Each process asked (format 4 and later; empty in older files)."""

    @property
    def done(self) -> bool:
        """True when a release function was really called (so the figures after it mean
        something)."""
        return self.called is not None

    @classmethod
    def over(cls, processes: list[ProcessTrim], took_ms: float) -> TrimInfo:
        """The section for the processes asked (at least one)."""
        if not processes:
            raise ValueError("TrimInfo.over needs at least one process")
        calls = list(dict.fromkeys(p.called for p in processes if p.called is not None))

        def total(state: str, key: str) -> int | None:
            values = [getattr(p, state).get(key) for p in processes]
            ints = [v for v in values if isinstance(v, int)]
            return sum(ints) if len(ints) == len(values) else None

        def state(which: str) -> dict[str, Any]:
            keys = ("rss_bytes", "held_bytes", "in_use_bytes")
            return {**{k: total(which, k) for k in keys}, "processes": len(processes)}

        held = [p.released.held_bytes for p in processes]
        rss = [p.released.rss_bytes for p in processes]
        return cls(
            called=", ".join(c for c in calls if c) if calls else None,
            result=processes[0].result if len(processes) == 1 else None,
            before=state("before"),
            after=state("after"),
            released=Released(
                sum(h for h in held if h is not None) if None not in held else None,
                sum(r for r in rss if r is not None) if None not in rss else None,
            ),
            took_ms=took_ms,
            processes=list(processes),
        )


@dataclass(frozen=True)
class Freed:
    """What a full collection freed in one process: before minus after (None: not counted)."""

    in_use_bytes: int | None
    """malloc's in-use count."""
    held_bytes: int | None
    """What the allocator holds from the OS."""
    rss_bytes: int
    pymalloc_used_bytes: int | None
    """pymalloc's bytes in objects; None when pymalloc is off or unread."""


@dataclass(frozen=True)
class ProcessCollection:
    """What a full collection (gc.collect()) in one server process found and freed."""

    label: str
    """main, w1, w2, ...: as in the per-process probe columns."""
    pid: int
    unreachable: int
    """gc.collect()'s return value: the unreachable objects it found."""
    counts_before: list[int]
    """gc.get_count() before it: allocations since the last collection, per generation."""
    generations: list[dict[str, int]]
    """gc.get_stats() after it: per generation, collections, collected, uncollectable."""
    garbage: int
    """len(gc.garbage) after it."""
    before: dict[str, Any]
    """The allocator's snapshot and rss_bytes before, as in ProcessTrim."""
    after: dict[str, Any]
    freed: Freed
    collect_ms: float
    """The collection alone."""
    took_ms: float
    """With the readings before and after."""


@dataclass(frozen=True)
class CollectionInfo:
    """A full garbage collection asked of every server process with an agent, in the trim phase
    before the trim (format 5, added later; only with --collect-garbage). The top-level figures
    are over the processes: `unreachable` their sum, `freed` the sums (None when a process
    lacked that figure)."""

    unreachable: int
    freed: Freed
    took_ms: float
    """How long asking took: every process, one after another."""
    processes: list[ProcessCollection] = field(default_factory=list)

    @classmethod
    def over(cls, processes: list[ProcessCollection], took_ms: float) -> CollectionInfo:
        """The section for the processes asked (at least one)."""
        if not processes:
            raise ValueError("CollectionInfo.over needs at least one process")

        def total(key: str) -> int | None:
            values = [getattr(p.freed, key) for p in processes]
            return None if None in values else sum(v for v in values if v is not None)

        return cls(
            unreachable=sum(p.unreachable for p in processes),
            freed=Freed(
                in_use_bytes=total("in_use_bytes"),
                held_bytes=total("held_bytes"),
                rss_bytes=sum(p.freed.rss_bytes for p in processes),
                pymalloc_used_bytes=total("pymalloc_used_bytes"),
            ),
            took_ms=took_ms,
            processes=list(processes),
        )

    @property
    def freed_live_bytes(self) -> int | None:
        """What it freed of live memory as the verdict counts it: malloc's in use plus
        pymalloc's bytes in objects (0 when pymalloc's were not read); None without malloc's."""
        if self.freed.in_use_bytes is None:
            return None
        return self.freed.in_use_bytes + (self.freed.pymalloc_used_bytes or 0)

    @property
    def collect_ms(self) -> float:
        """The longest collection of any one process."""
        return max((p.collect_ms for p in self.processes), default=0.0)

    def counts_before(self) -> list[int]:
        """gc.get_count() before, per generation, summed over the processes."""
        width = max((len(p.counts_before) for p in self.processes), default=0)
        return [
            sum(p.counts_before[g] for p in self.processes if g < len(p.counts_before))
            for g in range(width)
        ]


@dataclass(frozen=True)
class ObjectType:
    """One Python type in pympler's summary."""

    type: str
    """The type, as pympler's summary names it."""
    count: int
    """Live objects of the type."""
    total_bytes: int
    """Their size together, as pympler's summary counts it."""


@dataclass(frozen=True)
class TopObjects:
    """Pympler's top object types by size at one moment (GET /debug/objects)."""

    limit: int
    """How many types were asked for."""
    types: list[ObjectType]
    """Largest first."""
    took_ms: float
    """How long the walk over every object took."""
    t_s: float
    """When, seconds since the run's t=0."""


@dataclass(frozen=True)
class ProfileInfo:
    """A memray capture of the server and what was rendered from it."""

    tool: str = "memray"
    native: bool = True
    """Native (C) stacks recorded too."""
    mode: str = "aggregate"
    overhead: str = ""
    """What profiling does to the figures."""
    capture: str = ""
    """The capture file (memray's aggregated format)."""
    error: str | None = field(default=None, metadata=omitted_when_none())
    """Why there is no capture."""
    capture_bytes: int | None = field(default=None, metadata=omitted_when_none())
    flamegraph: str | None = field(default=None, metadata=omitted_when_none())
    """The rendered flamegraph (HTML)."""
    flamegraph_error: str | None = field(default=None, metadata=omitted_when_none())
    stats: str | None = field(default=None, metadata=omitted_when_none())
    """memray's summary of the allocating locations (text)."""
    stats_error: str | None = field(default=None, metadata=omitted_when_none())


@dataclass(frozen=True)
class ThresholdCheck:
    """One limit checked after the run."""

    name: str
    """p95_ms, p99_ms, error_rate, min_rps, peak_rss or growth."""
    limit: float
    """In `unit` (MiB for the memory limits)."""
    value: float | None
    """The run's figure; None when it has none (no batch completed)."""
    unit: str | None = field(default=None, metadata=omitted_when_none(of="value"))
    """Left out with no figure, as is `where`."""
    where: str | None = field(default=None, metadata=omitted_when_none(of="value"))
    """Which figure: the batch, or what memory was measured."""
    passed: bool | None = None
    """None: nothing to check against (counts as broken)."""
