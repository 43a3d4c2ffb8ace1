"""Render a `Comparison` as terminal text, Markdown, CSV or JSON (formatting only, no stats)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence

from sandbox.analysis.compare import Comparison, Group
from sandbox.analysis.metrics import (
    CONFIRMATORY_METRIC,
    HEADLINE_METRICS,
    METRIC_BY_KEY,
    METRICS,
    Metric,
)
from sandbox.analysis.stats import Ratio
from sandbox.errors import ConfigError

FORMATS = ("table", "markdown", "csv", "json")
CSV_COLUMNS = (
    "group",
    "allocator",
    "parameters",
    "metric",
    "unit",
    "n",
    "median",
    "mean",
    "sd",
    "min",
    "max",
    "baseline",
    "ratio",
    "ci_low",
    "ci_high",
    "p_value",
    "significant",
    "p_adjusted",
    "role",
)
"""`p_adjusted` and `role` come last so that readers of the older columns by position still
work; `significant` follows `p_adjusted` for an exploratory row."""
TIMES = "\u00d7"
"""The multiplication sign in `0.62 x glibc`."""
_HEADLINE_NAMES = {"after_idle_rss_mib": "after-idle", "peak_rss_mib": "peak"}


def render(comparison: Comparison, fmt: str = "table") -> str:
    """Format `comparison` as `table`, `markdown`, `csv` or `json` text."""
    if fmt == "table":
        return render_table(comparison)
    if fmt == "markdown":
        return render_markdown(comparison)
    if fmt == "csv":
        return render_csv(comparison)
    if fmt == "json":
        return json.dumps(comparison.to_dict(), indent=2, allow_nan=False) + "\n"
    raise ConfigError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")


def num(value: float | None, digits: int = 1) -> str:
    """`12.3`, or `-` for a missing value."""
    return "-" if value is None else f"{value:.{digits}f}"


def p_text(p: float) -> str:
    """`p=0.003`, or `p<0.001`."""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def ratio_text(r: Ratio | None, baseline: str) -> str:
    """`1.31 [1.22, 1.41] x glibc (p=0.003, n=3/3)` (with a real times sign); an exploratory
    metric shows its adjusted p as `Holm p=0.027`; notes a missing interval."""
    if r is None:
        return "baseline"
    if r.ratio is None:
        return f"- ({r.note})" if r.note else "-"
    head = f"{r.ratio:.2f}"
    if r.ci_low is not None and r.ci_high is not None:
        head += f" [{r.ci_low:.2f}, {r.ci_high:.2f}]"
    details = []
    if r.exploratory and r.p_adjusted is not None:
        details.append(f"Holm {p_text(r.p_adjusted)}")
    elif not r.exploratory and r.p_value is not None:
        details.append(p_text(r.p_value))
    details.append(f"n={r.n}/{r.n_baseline}")
    if r.ci_low is None and r.note:
        details.append(r.note)
    return f"{head} {TIMES} {baseline} ({', '.join(details)})"


def _title(c: Comparison) -> str:
    runs = sum(g.n for g in c.groups)
    what = f" of {', '.join(c.experiments)}" if c.experiments else ""
    skipped = f" ({len(c.skipped)} more skipped)" if c.skipped else ""
    return (
        f"{runs} runs{what}{skipped}: {c.workload}; baseline {c.baseline}; "
        f"{c.confidence:.0%} confidence intervals"
    )


def adjustment_note(c: Comparison) -> str:
    """How to read p and the intervals: which metric is confirmatory, which are adjusted."""
    confirmatory = METRIC_BY_KEY[CONFIRMATORY_METRIC].label
    return (
        f"p on {confirmatory} (confirmatory) is unadjusted; Holm p on the other metrics "
        "(exploratory) is adjusted within each comparison and decides significance; the "
        f"{c.confidence:.0%} intervals are unadjusted"
    )


def headlines(c: Comparison) -> list[str]:
    """Hyperfine-style lines: `jemalloc  after-idle 171.0 ± 2.3 MiB   0.62 [...] x glibc (...)`."""
    rows: list[list[str]] = []
    for key in HEADLINE_METRICS:
        metric = METRIC_BY_KEY[key]
        for g in c.groups:
            s = g.stat(key)
            if s is None:
                continue
            rows.append(
                [
                    g.label,
                    _HEADLINE_NAMES[key],
                    f"{s.mean:.1f}",
                    "±" if s.sd is not None else " ",
                    f"{s.sd:.1f}" if s.sd is not None else "",
                    metric.unit,
                    "" if g.label == c.baseline else ratio_text(g.ratio(key), g.reference),
                ]
            )
    lines = _align(rows, right=(2, 4), sep=("  ", " ", " ", " ", " ", "   "))
    return [line.rstrip() for line in lines]


def _align(
    rows: Sequence[Sequence[str]], right: Sequence[int] = (), sep: Sequence[str] | str = "  "
) -> list[str]:
    """Pad cells to column width (right-aligned for the `right` columns), joined by `sep`."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    seps = [sep] * (len(widths) - 1) if isinstance(sep, str) else list(sep)
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        line = cells[0]
        for s, cell in zip(seps, cells[1:], strict=False):
            line += s + cell
        lines.append(line)
    return lines


def table_rows(c: Comparison) -> list[tuple[Metric, Group, list[str]]]:
    """The comparison table's rows, metric by metric, each with its metric, its group and its
    cells as text (the metric's name only on its first row); the text, markdown and HTML tables
    all format these."""
    rows = []
    for m in METRICS:
        first = True
        for g in c.groups:
            s = g.stat(m.key)
            if s is None:
                continue
            cells = [
                f"{m.label} ({m.unit})" if first else "",
                g.label,
                str(s.n),
                num(s.median),
                f"{s.mean:.1f} ± {num(s.sd)}",
                num(s.min),
                num(s.max),
                "" if g.label == c.baseline else ratio_text(g.ratio(m.key), g.reference),
            ]
            rows.append((m, g, cells))
            first = False
    return rows


def _rows(c: Comparison) -> list[list[str]]:
    return [cells for _, _, cells in table_rows(c)]


TABLE_HEADER = ["metric", "group", "n", "median", "mean ± sd", "min", "max"]
"""The table's columns before the ratio's (`vs <baseline>`)."""


def render_table(c: Comparison) -> str:
    """Aligned terminal text: title, headline lines, the full table, then the warnings."""
    header = [*TABLE_HEADER, f"vs {c.baseline}"]
    table = _align([header, *_rows(c)], right=(2, 3, 4, 5, 6))
    out = [_title(c), "", *headlines(c), "", *(line.rstrip() for line in table)]
    if len(c.groups) > 1:
        out += ["", adjustment_note(c)]
    if c.verdicts:
        out += ["", *c.verdicts]
    for stair in c.stairs:
        out += ["", *stair.lines]
    if c.warnings:
        out += ["", *(f"WARNING: {w.message}" for w in c.warnings)]
    return "\n".join(out) + "\n"


_MD_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "|": "\\|",
        "`": "\\`",
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "\n": " ",
        "\r": " ",
    }
)


def _md_escape(text: str) -> str:
    """Text from result files as literal Markdown: no raw HTML (`<`, `>`, `&` become entities),
    no code span or table cell it could close, no link or image (`](` is escaped), one line."""
    return re.sub(r"\](?=[(\[])", r"\\]", text.translate(_MD_ESCAPES))


def _md_code(text: str) -> str:
    """`text` as a Markdown code span (literal, HTML included), fenced with more backticks than
    it holds in a row."""
    text = text.replace("\n", " ").replace("\r", " ")
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def render_markdown(c: Comparison) -> str:
    """A Markdown report: title, headline list, table and warnings."""
    out = [f"**{_md_escape(_title(c))}**", ""]
    out += [f"- {_md_code(line)}" for line in headlines(c)]
    header = [*TABLE_HEADER, f"vs {_md_escape(c.baseline)}"]
    out += ["", "| " + " | ".join(header) + " |", "|" + "|".join(["---", "---"] + ["--:"] * 5)]
    out[-1] += "|---|"
    out += ["| " + " | ".join(_md_escape(cell) for cell in row) + " |" for row in _rows(c)]
    if len(c.groups) > 1:
        out += ["", f"_{_md_escape(adjustment_note(c))}_"]
    if c.verdicts:
        out += ["", "**What held the memory**", ""]
        out += [f"- {_md_escape(v)}" for v in c.verdicts]
    if c.stairs:
        out += ["", "**The stair read**"]
    for stair in c.stairs:
        head, *rest = stair.lines
        out += ["", _md_escape(head), ""]
        out += [f"- {_md_escape(line.strip())}" for line in rest]
    if c.warnings:
        out += ["", "**Warnings**", ""]
        out += [f"- {_md_escape(w.message)}" for w in c.warnings]
    return "\n".join(out) + "\n"


def _csv_row(c: Comparison, g: Group, key: str) -> list[object] | None:
    s = g.stat(key)
    if s is None:
        return None
    r = g.ratio(key)
    params = ";".join(f"{k}={v}" for k, v in sorted(g.parameters.items()))
    ratio_cells: list[object] = ["", "", "", "", ""]
    adjusted_cells: list[object] = ["", ""]
    if r is not None:
        ratio_cells = [r.ratio, r.ci_low, r.ci_high, r.p_value, r.significant]
        adjusted_cells = [r.p_adjusted, r.role]
    cells: list[object] = [
        g.label,
        g.allocator,
        params,
        key,
        METRIC_BY_KEY[key].unit,
        s.n,
        s.median,
        s.mean,
        s.sd,
        s.min,
        s.max,
        g.reference or c.baseline,
        *ratio_cells,
        *adjusted_cells,
    ]
    return ["" if v is None else v for v in cells]


def render_csv(c: Comparison) -> str:
    """One row per group and metric with full-precision numbers (empty cell = no value)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for g in c.groups:
        for m in METRICS:
            row = _csv_row(c, g, m.key)
            if row is not None:
                writer.writerow(row)
    return buf.getvalue()
