"""What a growth read's x counts, and how its words say an amount of it.

The fitting and the forecast (`growth`, `forecast`) take x as plain numbers; only the words and
the JSON keys need to know what they count:
- a run's read (`REQUESTS`): requests done at each batch's end, 0 at the end of the baseline;
  "after 16,000 requests", "2.0 MiB per 1,000 requests", "in ≈ 460,000 [390,000, 550,000] more
  requests";
- a watch of a process (`SECONDS`): seconds since the first look, which plays the baseline's
  role; "2 min after the first look", "2.0 MiB per minute", "in ≈ 25 min [19 min, 38 min]".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Axis:
    """What x counts, and the names the words and the JSON give it."""

    name: Literal["requests", "seconds"]
    key: str
    """The JSON key of an x: requests, t_s."""
    points: Literal["batches", "looks"]
    """What gives the points: a run's batch ends, a watch's looks."""
    counts_first: bool
    """Whether the point at x = 0 counts among them (a watch's first look is a look; a run's
    baseline is no batch)."""
    per: float
    """The span of x a rate is given over ..."""
    per_words: str
    """... in words ..."""
    per_key: str
    """... and as a JSON key (bytes over that span)."""

    def point_count(self, ends: int) -> int:
        """Points read, from the points after x = 0 (`ends`)."""
        return ends + 1 if self.counts_first else ends

    def amount(self, x: float) -> str:
        """An amount of x: `16,000 requests`, `2 min`."""
        return f"{count(x)} requests" if self.name == "requests" else duration(x)

    def at(self, x: float) -> str:
        """A point on the axis, for a plot's few words: `16,000 req`, `2 min`."""
        return f"{count(x)} req" if self.name == "requests" else duration(x)

    def after(self, x: float) -> str:
        """A point on the axis in full: `after 16,000 requests`, `2 min after the first look`."""
        if self.name == "requests":
            return f"after {self.amount(x)}"
        return f"{self.amount(x)} after the first look"

    def figure(self, x: float) -> str:
        """An amount of x as a bare figure where its unit can follow a list: `460,000`, or
        with its unit where it cannot: `25 min`."""
        return count(x) if self.name == "requests" else duration(x)

    @property
    def more(self) -> str:
        """What follows `figure`s counted from the last point: ` more requests`, or nothing."""
        return " more requests" if self.name == "requests" else ""


REQUESTS = Axis(
    "requests", "requests", "batches", False, 1000.0, "per 1,000 requests", "per_1000_bytes"
)
SECONDS = Axis("seconds", "t_s", "looks", True, 60.0, "per minute", "per_minute_bytes")


def count(requests: float) -> str:
    """Requests to two significant digits (a forecast holds no more), with thousands commas."""
    if requests < 100:
        return f"{requests:,.0f}"
    digits = math.floor(math.log10(requests)) - 1
    return f"{round(requests, -digits):,.0f}"


def duration(seconds: float) -> str:
    """Seconds in the unit that suits them: `45 s`, `25 min`, `2.5 h`, `3.1 days`."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
