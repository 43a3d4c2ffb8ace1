"""Read Locust's own statistics (its `--json-file`) into BatchStats.

The file lists one entry per request name, each with a response-time histogram (milliseconds,
rounded as Locust rounds them) and the number of requests completed in each second. Totals,
percentiles and the per-second timeline are derived from those with Locust's own rules.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.errors import LoadError

_PLAN_NAME = re.compile(r"\[(?P<plan>[^\]]+)\]\s*$")


@dataclass(frozen=True)
class BatchStats:
    """One Locust batch, from Locust's own statistics."""

    index: int
    """1-based batch number (phase `batch-<index>`)."""
    start_s: float
    """Start, seconds since the run's t=0."""
    end_s: float
    """End, seconds since the run's t=0."""
    requests: int
    """Requests Locust completed."""
    failures: int
    """Requests Locust counted as failed (any status but 201)."""
    rps: float
    """Requests per second, as Locust computed it."""
    p50_ms: float
    """Median response time."""
    p95_ms: float
    """95th percentile response time."""
    p99_ms: float
    """99th percentile response time."""
    max_ms: float
    """Slowest response."""
    by_plan: dict[str, int] = field(default_factory=dict)
    """Requests per plan (tag)."""
    exit_code: int | None = None
    """Locust's exit code."""
    timeline_t_s: list[float] = field(default_factory=list)
    """Start of each second Locust counted requests in, seconds since the run's t=0."""
    timeline_requests: list[int] = field(default_factory=list)
    """Requests completed in each of those seconds (Locust's num_reqs_per_sec)."""
    timeline_failures: list[int] = field(default_factory=list)
    """Failures in each of those seconds."""


def percentile(histogram: Mapping[int, int], total: int, fraction: float) -> int:
    """The response time that `fraction` of the requests finished within (Locust's rule)."""
    allowed_above = int(total * fraction)
    counted = 0
    for rt in sorted(histogram, reverse=True):
        counted += histogram[rt]
        if total - counted <= allowed_above:
            return rt
    return 0


def _counter(raw: Any) -> Counter[int]:
    out: Counter[int] = Counter()
    if isinstance(raw, Mapping):
        for key, count in raw.items():
            out[int(float(key))] += int(count)
    return out


def read_entries(stats_json: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(stats_json.read_text())
    except FileNotFoundError:
        raise LoadError(f"Locust wrote no statistics ({stats_json} is missing)") from None
    except (OSError, ValueError) as exc:
        raise LoadError(f"Locust's statistics are unreadable ({stats_json}: {exc})") from None
    if not isinstance(data, list):
        raise LoadError(f"Locust's statistics are not a list of entries: {stats_json}")
    return [e for e in data if isinstance(e, dict)]


def summarise(
    entries: Sequence[Mapping[str, Any]],
    *,
    index: int,
    start_s: float,
    end_s: float,
    epoch_at_start: float,
    exit_code: int | None,
    plans: bool = True,
) -> BatchStats:
    """Totals over every entry; `epoch_at_start` maps Locust's wall-clock seconds onto run time.
    `plans`: names end in `[plan]` (our locustfile), so count requests per plan."""
    histogram: Counter[int] = Counter()
    per_second: Counter[int] = Counter()
    failures_per_second: Counter[int] = Counter()
    by_plan: dict[str, int] = {}
    requests = failures = 0
    first, last, slowest = float("inf"), 0.0, 0.0
    for e in entries:
        n = int(e.get("num_requests", 0))
        requests += n
        failures += int(e.get("num_failures", 0))
        histogram.update(_counter(e.get("response_times")))
        per_second.update(_counter(e.get("num_reqs_per_sec")))
        failures_per_second.update(_counter(e.get("num_fail_per_sec")))
        if n:
            first = min(first, float(e.get("start_time") or first))
            last = max(last, float(e.get("last_request_timestamp") or 0.0))
            slowest = max(slowest, float(e.get("max_response_time") or 0.0))
        m = _PLAN_NAME.search(str(e.get("name", ""))) if plans else None
        if m:
            by_plan[m.group("plan")] = by_plan.get(m.group("plan"), 0) + n
    seconds = sorted(per_second.keys() | failures_per_second.keys())
    return BatchStats(
        index=index,
        start_s=round(start_s, 3),
        end_s=round(end_s, 3),
        requests=requests,
        failures=failures,
        rps=round(requests / (last - first), 3) if last > first else 0.0,
        p50_ms=percentile(histogram, requests, 0.50),
        p95_ms=percentile(histogram, requests, 0.95),
        p99_ms=percentile(histogram, requests, 0.99),
        max_ms=round(slowest, 3),
        by_plan=by_plan,
        exit_code=exit_code,
        timeline_t_s=[round(s - epoch_at_start + start_s, 3) for s in seconds],
        timeline_requests=[per_second[s] for s in seconds],
        timeline_failures=[failures_per_second[s] for s in seconds],
    )
