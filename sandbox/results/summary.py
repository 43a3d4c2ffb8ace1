"""The headline figures of a run (`Summary`), and how they are computed from its samples and
phases: a result file's summary must match them when it is read back."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.results.sampling import Columns, Number, Phase


@dataclass(frozen=True)
class Summary:
    """Headline figures; recomputable from samples and phases with `compute_summary`."""

    baseline_rss_bytes: int
    """Median RSS during the baseline phase."""
    peak_rss_bytes: int
    """Highest sampled RSS."""
    end_of_load_rss_bytes: int
    """RSS at the end of the last load batch."""
    after_idle_rss_bytes: int
    """Median RSS over the last quarter of the final idle phase."""
    vmhwm_bytes: int | None
    """The kernel's own peak RSS (VmHWM) read at the end; None when unavailable."""
    in_use_baseline_bytes: int | None = None
    """What the application had allocated (allocator's count) at the end of the baseline."""
    held_baseline_bytes: int | None = None
    """What the allocator held from the OS at the end of the baseline."""
    in_use_end_of_load_bytes: int | None = None
    """What the application had allocated and not freed (allocator's count) at end of load."""
    held_end_of_load_bytes: int | None = None
    """What the allocator held from the OS at end of load."""
    in_use_after_idle_bytes: int | None = None
    """As in_use_end_of_load_bytes, at the end of the idle phase."""
    held_after_idle_bytes: int | None = None
    """As held_end_of_load_bytes, at the end of the idle phase."""
    after_trim_rss_bytes: int | None = None
    """Median RSS over the last quarter of the `trim` phase (after asking for free memory back)."""
    baseline_pss_bytes: int | None = None
    """Several server processes: the PSS sum (shared pages once) during the baseline."""
    peak_pss_bytes: int | None = None
    """Several server processes: the highest sampled PSS sum."""
    after_idle_pss_bytes: int | None = None
    """Several server processes: the PSS sum over the last quarter of the idle phase."""
    pymalloc_used_baseline_bytes: int | None = None
    """pymalloc's bytes in live objects at the end of the baseline; None: pymalloc off or
    unread."""
    pymalloc_free_baseline_bytes: int | None = None
    """pymalloc's arena bytes not in live objects at the end of the baseline."""
    pymalloc_used_end_of_load_bytes: int | None = None
    pymalloc_free_end_of_load_bytes: int | None = None
    pymalloc_used_after_idle_bytes: int | None = None
    pymalloc_free_after_idle_bytes: int | None = None
    active_end_of_load_bytes: int | None = None
    """jemalloc's stats.active at the end of load (pages of live slabs); None elsewhere."""

    @property
    def unused_end_of_load_bytes(self) -> int | None:
        """Held but not in use at end of load: fragmentation plus free pages kept."""
        return _gap(self.held_end_of_load_bytes, self.in_use_end_of_load_bytes)

    @property
    def unused_after_idle_bytes(self) -> int | None:
        """Held but not in use after idle."""
        return _gap(self.held_after_idle_bytes, self.in_use_after_idle_bytes)

    @property
    def active_per_allocated(self) -> float | None:
        """active / allocated at the end of load (the definition behind Redis's
        allocator_frag_ratio): jemalloc only."""
        active, allocated = self.active_end_of_load_bytes, self.in_use_end_of_load_bytes
        if active is None or not allocated:
            return None
        return active / allocated


def _gap(held: int | None, in_use: int | None) -> int | None:
    return held - in_use if held is not None and in_use is not None else None


def _phase(phases: Sequence[Phase], name: str) -> Phase | None:
    return next((p for p in phases if p.name == name), None)


def _in(t: Sequence[Number], values: Sequence[Number], start: float, end: float) -> list[Number]:
    return [v for ts, v in zip(t, values, strict=True) if start <= ts <= end]


def at_or_before(t: Sequence[Number], values: Sequence[Number], end: float) -> Number | None:
    """The last value read at or before `end` (seconds, as `t`); None when none was."""
    before = [v for ts, v in zip(t, values, strict=True) if ts <= end]
    return before[-1] if before else None


def _tail_median(t: Sequence[Number], values: Sequence[Number], phase: Phase | None) -> int | None:
    """Median over the last quarter of `phase` (the whole phase if that quarter is empty)."""
    if phase is None or phase.end_s <= phase.start_s or not values:
        return None
    tail_start = phase.end_s - (phase.end_s - phase.start_s) / 4
    vals = _in(t, values, tail_start, phase.end_s) or _in(t, values, phase.start_s, phase.end_s)
    return int(statistics.median(vals)) if vals else None


def _as_int(value: Number | None) -> int | None:
    return None if value is None else int(value)


def compute_summary(
    samples: Columns,
    phases: Sequence[Phase],
    vmhwm_bytes: int | None = None,
    probes: Columns | None = None,
) -> Summary:
    """Derive the headline figures from the sampled columns (see `Summary` for definitions)."""
    t = samples.get("t_s", [])
    rss = samples.get("rss_bytes", [])
    if not rss:
        return Summary(0, 0, 0, 0, vmhwm_bytes)
    baseline = _phase(phases, "baseline")
    base_vals = _in(t, rss, baseline.start_s, baseline.end_s) if baseline else []
    batches = [p for p in phases if p.name.startswith("batch-")]
    load_end = batches[-1].end_s if batches else t[-1]
    end_of_load = at_or_before(t, rss, load_end)
    idle = _phase(phases, "idle")
    after_idle = _tail_median(t, rss, idle)
    probes = probes or {}
    pt = probes.get("t_s", [])
    in_use = probes.get("alloc_in_use_bytes")
    held = probes.get("alloc_held_bytes")
    idle_end = idle.end_s if idle else pt[-1] if pt else 0.0
    base_end = baseline.end_s if baseline else 0.0
    py_used = probes.get("pymalloc_used_bytes")
    py_free = probes.get("pymalloc_free_bytes")

    def at(column: Sequence[Number] | None, end: float) -> int | None:
        return _as_int(at_or_before(pt, column, end)) if column else None

    pss = samples.get("pss_bytes")
    pss_base = _in(t, pss, baseline.start_s, baseline.end_s) if pss and baseline else []
    return Summary(
        baseline_rss_bytes=int(statistics.median(base_vals or rss[:1])),
        peak_rss_bytes=int(max(rss)),
        end_of_load_rss_bytes=int(end_of_load if end_of_load is not None else rss[-1]),
        after_idle_rss_bytes=after_idle if after_idle is not None else int(rss[-1]),
        vmhwm_bytes=vmhwm_bytes,
        in_use_baseline_bytes=_as_int(at_or_before(pt, in_use, base_end)) if in_use else None,
        held_baseline_bytes=_as_int(at_or_before(pt, held, base_end)) if held else None,
        in_use_end_of_load_bytes=_as_int(at_or_before(pt, in_use, load_end)) if in_use else None,
        held_end_of_load_bytes=_as_int(at_or_before(pt, held, load_end)) if held else None,
        in_use_after_idle_bytes=_as_int(at_or_before(pt, in_use, idle_end)) if in_use else None,
        held_after_idle_bytes=_as_int(at_or_before(pt, held, idle_end)) if held else None,
        after_trim_rss_bytes=_tail_median(t, rss, _phase(phases, "trim")),
        baseline_pss_bytes=int(statistics.median(pss_base or pss[:1])) if pss else None,
        peak_pss_bytes=int(max(pss)) if pss else None,
        after_idle_pss_bytes=_tail_median(t, pss, idle) if pss else None,
        pymalloc_used_baseline_bytes=at(py_used, base_end),
        pymalloc_free_baseline_bytes=at(py_free, base_end),
        pymalloc_used_end_of_load_bytes=at(py_used, load_end),
        pymalloc_free_end_of_load_bytes=at(py_free, load_end),
        pymalloc_used_after_idle_bytes=at(py_used, idle_end),
        pymalloc_free_after_idle_bytes=at(py_free, idle_end),
        active_end_of_load_bytes=at(probes.get("alloc_active_bytes"), load_end),
    )
