"""The limits a run was checked against after it ended, and the outcome of each."""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.results.shapes import omitted_when_none


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
