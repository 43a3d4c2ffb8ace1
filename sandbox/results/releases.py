"""What asking the server's processes to give memory back did, in the trim phase: a full garbage
collection in each (when asked for), then the allocator's trim; each process's figures and their
sums.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from sandbox.results.shapes import flattened


@dataclass(frozen=True)
class MemoryState:
    """One process's allocator counters and RSS at one moment, as its agent reported them before
    and after a trim or a collection."""

    allocator: str
    """glibc, jemalloc, tcmalloc, mimalloc, or the library's file name when unknown."""
    library: str | None
    """Path of the library that provides malloc; None for glibc's own."""
    in_use_bytes: int | None
    """Allocated by the application and not freed; None when the allocator does not count it."""
    held_bytes: int | None
    """Taken from the OS and not returned; None when unavailable."""
    raw: Mapping[str, int]
    """The allocator's native counters, by their native names."""
    note: str | None
    """What limits these numbers, or why they are missing."""
    rss_bytes: int
    """The process's resident set size (/proc/self/statm)."""


@dataclass(frozen=True)
class CollectedState(MemoryState):
    """A process's memory before or after a full collection: with pymalloc's count."""

    pymalloc_used_bytes: int | None
    """pymalloc's bytes in live objects; None when pymalloc is off or unread."""

    @classmethod
    def of(cls, state: MemoryState, pymalloc_used_bytes: int | None) -> CollectedState:
        """`state` with pymalloc's count."""
        return cls(
            **{f.name: getattr(state, f.name) for f in fields(state)},
            pymalloc_used_bytes=pymalloc_used_bytes,
        )


@dataclass(frozen=True)
class Released:
    """What a trim gave back: before minus after."""

    held_bytes: int | None
    rss_bytes: int | None


@dataclass(frozen=True)
class TrimAnswer:
    """A process's agent's answer to `trim`: what it called and what came back."""

    pid: int
    called: str | None
    """The allocator function called, e.g. `malloc_trim(0)`; None when it has none."""
    result: int | None
    """What that function returned (None for void functions)."""
    before: MemoryState
    after: MemoryState
    released: Released
    """before minus after (held_bytes None when either is unknown)."""
    took_ms: float


@dataclass(frozen=True)
class ProcessTrim:
    """What asking one server process's allocator for its free memory back did: its agent's
    answer, with the process's label (on disk, one mapping)."""

    label: str
    """main, w1, w2, ...: as in the per-process probe columns."""
    answer: TrimAnswer = field(metadata=flattened())


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
        answers = [p.answer for p in processes]
        calls = list(dict.fromkeys(a.called for a in answers if a.called is not None))

        def total(state: str, key: str) -> int | None:
            values = [getattr(getattr(a, state), key) for a in answers]
            ints = [v for v in values if isinstance(v, int)]
            return sum(ints) if len(ints) == len(values) else None

        def state(which: str) -> dict[str, Any]:
            keys = ("rss_bytes", "held_bytes", "in_use_bytes")
            return {**{k: total(which, k) for k in keys}, "processes": len(processes)}

        held = [a.released.held_bytes for a in answers]
        rss = [a.released.rss_bytes for a in answers]
        return cls(
            called=", ".join(c for c in calls if c) if calls else None,
            result=answers[0].result if len(answers) == 1 else None,
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
    before: CollectedState
    after: CollectedState
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
