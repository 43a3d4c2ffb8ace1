"""Requests done so far, as Locust counts them: for the progress line of a server without /stats.

While a batch runs, Locust (started with `--csv PREFIX`) rewrites `PREFIX_stats.csv` every
second (locust.stats.CSV_STATS_INTERVAL_SEC, 1 s in Locust 2.x; not settable from outside)
with one row per request name and a last row named `Aggregated`, whose `Request Count` is the
batch's total so far. Each batch is a new Locust, counting from 0: `LocustCount` adds the
finished batches' totals (from their --json-file) to the running batch's figure.

The file is read, never locked: a read that meets it half rewritten finds no Aggregated row
(or a smaller count) and keeps the last figure, so the count never goes back.
"""

from __future__ import annotations

import csv
import io
import threading
from pathlib import Path

TOTAL_ROW = "Aggregated"
COUNT_COLUMN = "Request Count"


def read_request_count(stats_csv: Path) -> int | None:
    """The `Request Count` of the Aggregated row of a Locust `_stats.csv`; None when the file is
    missing, empty or caught mid-rewrite."""
    try:
        text = stats_csv.read_text(errors="replace")
    except OSError:
        return None
    try:
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("Name") == TOTAL_ROW:
                count = int(row.get(COUNT_COLUMN) or "")
                return count if count >= 0 else None
    except (csv.Error, ValueError):
        return None
    return None


class LocustCount:
    """The run's requests done so far: finished batches plus the running batch's CSV figure.

    The runner calls `follow` when a batch starts and `finish` when it ends; any thread may call
    `total` (the probe does, once a second).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._finished = 0
        self._running: Path | None = None
        self._running_count = 0

    def follow(self, stats_csv: Path) -> None:
        """A batch started; Locust writes its running totals to `stats_csv`. A batch still
        followed (it failed before `finish`) counts with the last figure read from it."""
        with self._lock:
            self._finished += self._running_count
            self._running, self._running_count = stats_csv, 0

    def finish(self, requests: int | None = None) -> None:
        """The running batch ended after `requests` (Locust's final total; None: the last
        figure read, when the batch failed before it wrote one)."""
        with self._lock:
            self._finished += self._running_count if requests is None else requests
            self._running, self._running_count = None, 0

    def total(self) -> int:
        with self._lock:
            running = self._running
        count = read_request_count(running) if running is not None else None
        with self._lock:
            if running is not None and running == self._running and count is not None:
                self._running_count = max(self._running_count, count)
            return self._finished + self._running_count
