"""Read Locust's own CSV statistics into BatchStats."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from sandbox.errors import LoadError
from sandbox.results import BatchStats

_PLAN_NAME = re.compile(r"\[(?P<plan>[^\]]+)\]\s*$")


def _num(row: dict[str, str], key: str) -> float:
    value = row.get(key, "") or "0"
    try:
        return float(value)
    except ValueError:
        return 0.0


def read_batch_stats(
    stats_csv: Path, *, index: int, start_s: float, end_s: float, exit_code: int | None
) -> BatchStats:
    """Parse `<prefix>_stats.csv`: the Aggregated row, plus request counts per plan."""
    try:
        with open(stats_csv, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise LoadError(f"Locust wrote no statistics ({stats_csv} is missing)") from None
    total = next((r for r in rows if r.get("Name") == "Aggregated"), None)
    if total is None:
        raise LoadError(f"Locust's statistics have no Aggregated row: {stats_csv}")
    by_plan: dict[str, int] = {}
    for row in rows:
        m = _PLAN_NAME.search(row.get("Name", ""))
        if m and row.get("Name") != "Aggregated":
            by_plan[m.group("plan")] = by_plan.get(m.group("plan"), 0) + int(
                _num(row, "Request Count")
            )
    return BatchStats(
        index=index,
        start_s=round(start_s, 3),
        end_s=round(end_s, 3),
        requests=int(_num(total, "Request Count")),
        failures=int(_num(total, "Failure Count")),
        rps=round(_num(total, "Requests/s"), 3),
        p50_ms=_num(total, "50%"),
        p95_ms=_num(total, "95%"),
        p99_ms=_num(total, "99%"),
        max_ms=_num(total, "Max Response Time"),
        by_plan=by_plan,
        exit_code=exit_code,
    )
