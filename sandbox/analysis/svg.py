"""Figures as inline SVG for the HTML report, and curves light enough to inline.

`figure_svg` draws a figure with matplotlib's SVG backend, text kept as text (searchable, and
far smaller than glyph outlines), `$` in labels taken literally (a crafted allocator name is
not mathtext), and returns the bare `<svg>` element: no XML prolog or DOCTYPE, no metadata,
no fixed size (the page scales it), ids salted per figure so two figures on one page never
share one, and coordinates to a tenth of a point. `decimated` thins a run's columns to a few hundred
points, keeping each bucket's lowest and highest RSS so peaks survive.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sandbox.results.model import RunResult
from sandbox.results.sampling import Columns

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_POINTS = 400
"""Per run and column table: at most about this many points reach the SVG."""
_EXTREMES_OF = ("rss_bytes", "alloc_held_bytes", "requests_done")
"""The column whose lowest and highest value each bucket keeps (the first a table has)."""


def figure_svg(draw: Callable[[], Figure], name: str) -> str:
    """The figure `draw()` makes, as an `<svg>` element for an HTML page; `name` (letters and
    digits) salts the ids and becomes the element's class."""
    import matplotlib

    if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise ValueError(f"figure name {name!r}: use lower-case letters, digits and -")
    with matplotlib.rc_context(
        {"svg.fonttype": "none", "svg.hashsalt": name, "text.parse_math": False}
    ):
        fig = draw()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={k: None for k in _METADATA_KEYS})
    return _inline(buf.getvalue(), name)


_METADATA_KEYS = ("Date", "Creator", "Format", "Type")


def _inline(text: str, name: str) -> str:
    start = text.index("<svg")
    svg = text[start:]
    drawn = re.search(r'\swidth="([\d.]+)pt"', svg)
    svg = re.sub(r'\s(width|height)="[^"]*pt"', "", svg, count=2)
    # As wide as the page allows, never wider than drawn (1 pt = 4/3 CSS px).
    style = f' style="max-width:{float(drawn.group(1)) * 4 / 3:.0f}px"' if drawn else ""
    svg = svg.replace("<svg ", f'<svg class="figure {name}" role="img"{style} ', 1)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    referenced = set(re.findall(r'(?:url\(#|href="#)([^)"]+)', svg))
    svg = re.sub(r'\sid="([^"]+)"', lambda m: m.group(0) if m.group(1) in referenced else "", svg)
    svg = re.sub(r'\s(d|x|y|transform)="([^"]*)"', _shorten_attribute, svg)
    svg = re.sub(r">\s+<", ">\n<", svg)
    return svg.strip()


def _shorten_attribute(match: re.Match[str]) -> str:
    value = re.sub(r"(\d+\.\d)\d+", r"\1", match.group(2))
    value = re.sub(r"\s+", " ", value).strip()
    return f' {match.group(1)}="{value}"'


def decimated(result: RunResult, max_points: int = MAX_POINTS) -> RunResult:
    """`result` with samples and probes thinned to about `max_points` rows each (for a plot;
    the summary is untouched)."""
    return replace(
        result,
        samples=_thin(result.samples, max_points),
        probes=_thin(result.probes, max_points),
    )


def decimated_all(results: Sequence[RunResult], max_points: int = MAX_POINTS) -> list[RunResult]:
    """`decimated` for every run."""
    return [decimated(r, max_points) for r in results]


def _thin(columns: Columns, max_points: int) -> Columns:
    n = len(columns.get("t_s", []))
    if n <= max_points or max_points < 4:
        return columns
    key = next((k for k in _EXTREMES_OF if k in columns), None)
    keep = _keep_indices(columns[key] if key else None, n, max_points)
    return {k: [v[i] for i in keep] for k, v in columns.items()}


def _keep_indices(values: Sequence[Any] | None, n: int, max_points: int) -> list[int]:
    """First and last index, and per bucket the lowest and highest value's (or the bucket's
    first and last index when there is no value column)."""
    buckets = max(1, (max_points - 2) // 2)
    keep = {0, n - 1}
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        if hi <= lo:
            continue
        if values is None:
            keep.update((lo, hi - 1))
            continue
        span = range(lo, hi)
        keep.add(min(span, key=values.__getitem__))
        keep.add(max(span, key=values.__getitem__))
    return sorted(keep)
