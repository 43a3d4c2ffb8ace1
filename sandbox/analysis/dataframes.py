"""Results as tidy pandas DataFrames, for a notebook's `groupby` and plots.

Three tables: `runs` (one row per run: its group, settings and summary figures), `samples`
(one row per sample of every run: run_id, allocator, group, repeat, t_s, phase, rss_bytes and
the other sampler columns) and `probes` (likewise for the ~1 Hz server counters). A column a run
does not have is missing (NaN) in its rows.

pandas is an optional dependency (`pip install -e ".[notebook]"`) and is imported only when
`to_dataframe` is called.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sandbox.analysis.groups import group_label
from sandbox.analysis.metrics import METRIC_BY_KEY
from sandbox.analysis.sections import sampler_interval_s, sandbox_version
from sandbox.errors import ConfigError, SandboxError
from sandbox.results.files import load_all
from sandbox.results.model import RunResult
from sandbox.results.sampling import Phase
from sandbox.results.summary import Summary

if TYPE_CHECKING:
    import pandas as pd

Table = Literal["runs", "samples", "probes"]
TABLES: tuple[Table, ...] = ("runs", "samples", "probes")
Source = RunResult | Path | str
ID_COLUMNS = ("run_id", "allocator", "group", "repeat")
"""First in every table: the run, and the group `compare` puts it in."""


def to_dataframe(results: Source | Iterable[Source], table: Table | str = "runs") -> pd.DataFrame:
    """A tidy table of `results` (runs, result files or folders of them): `runs`, `samples` or
    `probes` (see the module docstring)."""
    try:
        import pandas as pd
    except ImportError:
        raise SandboxError(
            "to_dataframe needs pandas; install it with: .venv/bin/pip install -e '.[notebook]'"
        ) from None
    if table not in TABLES:
        raise ConfigError(f"unknown table {table!r}; use one of: {', '.join(TABLES)}")
    runs = _collect(results)
    if not runs:
        raise SandboxError("no run results to tabulate; pass result files or their folders")
    if table == "runs":
        return pd.DataFrame([run_row(r) for r in runs])
    frames = [_columns_frame(pd, r, r.samples if table == "samples" else r.probes) for r in runs]
    return pd.concat(frames, ignore_index=True)


def _collect(results: Source | Iterable[Source]) -> list[RunResult]:
    items: Iterable[Source] = [results] if isinstance(results, RunResult | Path | str) else results
    out: list[RunResult] = []
    for item in items:
        out.extend([item] if isinstance(item, RunResult) else load_all([item]))
    return out


def _ids(result: RunResult) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "allocator": result.allocator.name,
        "group": group_label(result),
        "repeat": result.repeat,
    }


def _param(value: Any) -> Any:
    """A parameter value usable as a groupby key (lists become `a,b`)."""
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else value


def run_row(result: RunResult) -> dict[str, Any]:
    """One run as a flat row: ids, parameters (`param_<name>`), settings, summary figures in
    bytes, then requests, failures, throughput and p95 latency."""
    s, load = result.server, result.load
    row: dict[str, Any] = {
        **_ids(result),
        "experiment": result.experiment,
        "status": result.status,
        "started_at": result.started_at,
        **{f"param_{k}": _param(v) for k, v in sorted(result.parameters.items())},
        "handler": s.handler,
        "sleep_ms": s.sleep_ms,
        "threads": s.threads,
        "pymalloc": s.pymalloc,
        "server_workers": s.workers,
        "app": s.app,
        "tags": ",".join(load.spec.tags),
        "users": load.spec.users,
        "iterations": load.spec.iterations,
        "batches": load.schedule.batches,
        "pause_s": load.schedule.pause_s,
        "idle_s": load.schedule.idle_s,
        "load_model": load.spec.model.name,
        "load_workers": load.spec.workers,
        "interval_s": sampler_interval_s(result),
        "sandbox_version": sandbox_version(result),
    }
    summary = result.summary
    row.update({f.name: getattr(summary, f.name) for f in fields(Summary)})
    row["unused_end_of_load_bytes"] = summary.unused_end_of_load_bytes
    row["unused_after_idle_bytes"] = summary.unused_after_idle_bytes
    row["requests"] = sum(b.requests for b in load.stats)
    for key in ("failures", "throughput_rps", "p95_ms"):
        row[key] = METRIC_BY_KEY[key].extract(result)
    return row


def phase_at(phases: Sequence[Phase], t_s: Sequence[float]) -> list[str | None]:
    """The name of the phase each time falls in (a boundary belongs to the later phase; the
    last phase includes its end); None outside every phase."""
    ordered = sorted(phases, key=lambda p: p.start_s)
    starts = [p.start_s for p in ordered]
    out: list[str | None] = []
    for t in t_s:
        i = bisect.bisect_right(starts, t) - 1
        inside = i >= 0 and (
            t < ordered[i].end_s or (t == ordered[i].end_s and i == len(ordered) - 1)
        )
        out.append(ordered[i].name if inside else None)
    return out


def _columns_frame(pd: Any, result: RunResult, columns: dict[str, list[Any]]) -> pd.DataFrame:
    t_s = columns.get("t_s", [])
    data: dict[str, Any] = {k: [v] * len(t_s) for k, v in _ids(result).items()}
    data["t_s"] = t_s
    data["phase"] = phase_at(result.phases, t_s)
    data.update({k: v for k, v in columns.items() if k != "t_s"})
    return pd.DataFrame(data)
