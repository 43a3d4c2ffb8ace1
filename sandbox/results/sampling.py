"""What a run measured over time: its phases, the sampled columns (samples at the sampler's rate,
probes at ~1 Hz), how they were sampled, and the agents in the server's processes that answered
the probes.

Samples are stored as equal-length columns with the unit in each name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sandbox.results.shapes import omitted_when_none

Number = float | int


Columns = dict[str, list[Number]]


@dataclass(frozen=True)
class Phase:
    """A named interval of the run (baseline, batch-N, pause-N, idle)."""

    name: str
    start_s: float
    end_s: float


def column_lengths_ok(columns: Columns) -> bool:
    return len({len(v) for v in columns.values()}) <= 1


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
