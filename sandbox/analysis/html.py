"""The report to share: one self-contained HTML page per experiment (`report.html`).

Readable offline and by mail: inline CSS and SVG, no script, no font or file fetched (the
page's Content-Security-Policy forbids both, so a slip would show, not leak). Top down: the
answer (plain words, the verdicts, the headline figures), the remedy ranking when there is one,
the comparison table, the plots (RSS, where the memory is), the warnings, then the settings,
the allocators, the host, the versions, the runs and the commands that reproduce it all.

The markup and the CSS are Jinja2 templates (`templates/`: the page, its sections, their macros
and the style sheet, inlined); this module says what goes on the page (`page_context`). The
templates escape every text they are given, those taken from a result file too (allocator
names, parameters, tags, notes); only the SVG figures are inserted as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import cache
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from sandbox.analysis import svg
from sandbox.analysis.answer import plain_answer
from sandbox.analysis.caveats import MATCHING_SETTINGS
from sandbox.analysis.compare import Comparison, compare
from sandbox.analysis.groups import group_label
from sandbox.analysis.report import TABLE_HEADER, TIMES, headlines, table_rows
from sandbox.analysis.reproduce import reproduce_commands
from sandbox.analysis.sections import (
    git_commit,
    host_facts,
    package_versions,
    sampler_interval_s,
    sandbox_version,
    threshold_outcomes,
)
from sandbox.analysis.stats import Ratio
from sandbox.errors import SandboxError
from sandbox.results.files import load_all
from sandbox.results.model import RunResult
from sandbox.units import MIB

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPORT_NAME = "report.html"
PAGE_TEMPLATE = "report.html.j2"
"""The page; its Content-Security-Policy allows nothing but the page itself (no script, no
request of any kind)."""


@dataclass(frozen=True)
class Ranking:
    """A ranked table placed right after the answer (the remedy race fills it in)."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass(frozen=True)
class Plot:
    """One inline figure with its caption."""

    svg: str
    """A bare `<svg>` element (from `svg.figure_svg`); trusted, inserted as it is (as Markup)."""
    caption: str


# --- The page ---------------------------------------------------------------------------------


def write_report(
    paths: Sequence[Path],
    out: Path | None = None,
    *,
    baseline: str | None = None,
    ranking: Ranking | None = None,
) -> Path:
    """Load the runs under `paths`, write the page to `out` (default: report.html in the first
    folder, or beside the first file) and return where it went."""
    results = load_all(paths)
    if not results:
        raise SandboxError(f"no result files under {', '.join(map(str, paths))}")
    first = paths[0]
    folder = first if first.is_dir() else first.parent
    out = out or folder / REPORT_NAME
    page = build_page(results, baseline=baseline, folder=folder, ranking=ranking)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


def build_page(
    results: Sequence[RunResult],
    *,
    baseline: str | None = None,
    folder: Path | None = None,
    ranking: Ranking | None = None,
    generated_at: datetime | None = None,
) -> str:
    """Compare `results`, draw the plots and lay out the whole page."""
    comparison = compare(results, baseline=baseline)
    plots = report_plots(results, comparison.baseline)
    commands = reproduce_commands(results, folder)
    return render_page(
        comparison,
        results,
        plots=plots,
        ranking=ranking,
        commands=commands,
        generated_at=generated_at or datetime.now(timezone.utc),
    )


def report_plots(results: Sequence[RunResult], baseline: str) -> list[Plot]:
    """RSS over time, and where the memory is when the runs have allocator counters; curves
    decimated so the page stays small."""
    from sandbox.analysis.plot import plot_decomposition, plot_rss

    light = svg.decimated_all(results)
    draws: list[tuple[str, Callable[[], Figure], str]] = [
        (
            "rss",
            lambda: plot_rss(light, x="time", baseline=baseline),
            "RSS over time: one panel per group (thin lines: runs, bold: their median; dotted: "
            "runs that did not finish ok), the last panel overlays the medians. Shaded: "
            "baseline, load batches (numbered), pauses, idle, trim. Stair-steps that never come "
            "down in the pauses are memory the allocator keeps.",
        )
    ]
    if any("alloc_held_bytes" in r.probes for r in results if r.status == "ok"):
        draws.append(
            (
                "decomposition",
                lambda: plot_decomposition(light, baseline=baseline),
                "Where the memory is (medians): RSS (black), what the allocator holds (red) and "
                "what the application has in use (green). The red band is free memory the "
                "allocator keeps (fragmentation, pages not returned); green climbing with RSS "
                "is a leak or a cache instead.",
            )
        )
    return [Plot(svg.figure_svg(draw, name), caption) for name, draw, caption in draws]


def render_page(
    c: Comparison,
    results: Sequence[RunResult],
    *,
    plots: Sequence[Plot] = (),
    ranking: Ranking | None = None,
    commands: Sequence[str] = (),
    generated_at: datetime | None = None,
) -> str:
    """The page, from its parts (no statistics or plotting here)."""
    context = page_context(
        c, results, plots=plots, ranking=ranking, commands=commands, generated_at=generated_at
    )
    return environment().get_template(PAGE_TEMPLATE).render(context)


def page_context(
    c: Comparison,
    results: Sequence[RunResult],
    *,
    plots: Sequence[Plot] = (),
    ranking: Ranking | None = None,
    commands: Sequence[str] = (),
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    """What the page template shows: every variable it reads, texts still unescaped."""
    from sandbox import __version__

    return {
        "title": _title(c),
        "subtitle": _subtitle(c),
        "answer": _answer(c),
        "ranking": ranking,
        "comparison": _comparison(c),
        "plots": [replace(p, svg=Markup(p.svg)) for p in plots],  # trusted: matplotlib's SVG
        "warnings": [w.message for w in c.warnings],
        "settings": _settings(results),
        "allocators": _allocators(results),
        "host": _host(results),
        "versions": _versions(results),
        "runs": _runs(results),
        "commands": "\n".join(commands),
        "version": __version__,
        "generated_at": generated_at,
    }


# --- The templates ----------------------------------------------------------------------------


@cache
def environment() -> Environment:
    """The page's templates, read from the installed package (`templates/`)."""
    return Environment(
        loader=PackageLoader("sandbox.analysis", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        finalize=_escaped,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _escaped(value: object) -> object:
    """Every `{{ value }}` of the templates, escaped as `html.escape` does it (`&#x27;`,
    `&quot;`, where markupsafe writes `&#39;`, `&#34;`): the page stays byte for byte what it
    was. Markup (the SVG figures, the macros' output) passes as it is."""
    if hasattr(value, "__html__"):
        return value
    return Markup(escape(str(value), quote=True))


# --- What the page shows ----------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """Rows of text cells; no header row when `header` is None."""

    header: tuple[str, ...] | None
    rows: Sequence[Sequence[str]]
    numeric: tuple[int, ...] = ()
    """The columns aligned as numbers."""


@dataclass(frozen=True)
class Facts:
    """A section of name/value rows (settings, host, versions) under an optional note."""

    section: str
    """The section's id."""
    title: str
    rows: list[tuple[str, str]]
    note: str = ""


@dataclass(frozen=True)
class Stair:
    """One group's stair read: its first line, then the rest as bullets."""

    head: str
    lines: list[str]


@dataclass(frozen=True)
class Answer:
    """The first section: the answer, what held the memory, the stairs, the figures."""

    lead: list[str]
    """The answer in plain words."""
    verdicts: list[str]
    """What held the memory, per group."""
    stairs: list[Stair]
    headlines: str
    """The headline figures, one per line (preformatted)."""


@dataclass(frozen=True)
class ComparisonRow:
    """One metric of one group in the comparison table."""

    metric: str
    group: str
    numbers: list[str]
    vs: str
    """The ratio to the group compared with, and its interval."""
    shade: str
    """`better` or `worse` (green or red) when the interval excludes 1.00, else empty."""


@dataclass(frozen=True)
class ComparisonTable:
    """Every metric of every group, with its ratio to the group compared with."""

    header: list[str]
    rows: list[ComparisonRow]
    times: str = TIMES


def _title(c: Comparison) -> str:
    what = ", ".join(c.experiments) or "runs"
    groups = " vs ".join(g.label for g in c.groups)
    return f"{what}: {groups}"


def _subtitle(c: Comparison) -> str:
    runs = sum(g.n for g in c.groups)
    skipped = f" ({len(c.skipped)} more skipped)" if c.skipped else ""
    return (
        f"{runs} run{'' if runs == 1 else 's'}{skipped}; {c.workload}; baseline {c.baseline}; "
        f"{c.confidence:.0%} confidence intervals"
    )


def _answer(c: Comparison) -> Answer:
    lead = plain_answer(c) or [f"only one group ({c.baseline}): nothing to compare it with"]
    return Answer(
        lead=lead,
        verdicts=list(c.verdicts),
        stairs=[_stair(s.lines) for s in c.stairs],
        headlines="\n".join(headlines(c)),
    )


def _stair(lines: Sequence[str]) -> Stair:
    head, *rest = lines
    return Stair(head, [line.strip() for line in rest])


def _comparison(c: Comparison) -> ComparisonTable:
    rows = []
    for m, g, texts in table_rows(c):
        metric, group, *numbers, vs = texts
        rows.append(ComparisonRow(metric, group, numbers, vs, _shade(m.key, g.ratio(m.key))))
    return ComparisonTable([*TABLE_HEADER, f"vs {c.baseline}"], rows)


def _shade(metric: str, r: Ratio | None) -> str:
    """`better` or `worse` when the ratio's interval excludes 1.00, else empty."""
    if r is None or not r.significant or r.ratio is None:
        return ""
    lower_is_better = metric != "throughput_rps"
    return "better" if (r.ratio < 1.0) == lower_is_better else "worse"


def _values(results: Sequence[RunResult], get: Callable[[RunResult], Any]) -> str:
    """The distinct values of `get` over the runs, in first-seen order, joined by ` / `."""
    seen = dict.fromkeys(_show(get(r)) for r in results)
    return " / ".join(seen)


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    if isinstance(value, Mapping):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def _settings(results: Sequence[RunResult]) -> Facts:
    rows = [(key, _values(results, get)) for key, _setting, get in MATCHING_SETTINGS]
    rows += [
        ("experiment parameters", _values(results, lambda r: r.parameters)),
        ("load.locustfile", _values(results, lambda r: str(r.load.spec.locustfile))),
        ("load.baseline_s", _values(results, lambda r: r.load.schedule.baseline_s)),
        ("load.spawn_rate", _values(results, lambda r: r.load.spec.spawn_rate)),
        ("server.max_body_bytes", _values(results, lambda r: r.server.max_body_bytes)),
        ("sampler.interval_s", _values(results, sampler_interval_s)),
    ]
    return Facts(
        "settings",
        "Settings",
        rows,
        "Values that differ between runs are joined with /; an experiment parameter varies "
        "on purpose, anything else is named in the warnings.",
    )


def _allocators(results: Sequence[RunResult]) -> Table:
    by_name: dict[str, list[RunResult]] = {}
    for r in results:
        by_name.setdefault(r.allocator.name, []).append(r)
    rows = []
    for name, runs in by_name.items():
        rows.append(
            (
                name,
                _values(runs, lambda r: r.allocator.library or "(glibc's own malloc)"),
                _values(runs, lambda r: r.allocator.env),
                _values(
                    runs,
                    lambda r: (
                        f"{r.allocator.package or '-'} {r.allocator.package_version or ''}".strip()
                    ),
                ),
                _values(runs, lambda r: r.allocator.verified_loaded),
                _values(runs, lambda r: r.allocator.malloc_owner),
            )
        )
    header = ("allocator", "library", "environment", "package", "verified loaded", "malloc from")
    return Table(header, rows)


_HOST_KEYS = (
    "hostname",
    "python",
    "python_implementation",
    "glibc",
    "kernel",
    "machine",
    "cpu_count",
)


def _host(results: Sequence[RunResult]) -> Facts:
    rows = [(key, _values(results, _fact(key))) for key in _HOST_KEYS]
    rows.append(("memory_total", _values(results, _memory_total)))
    return Facts("host", "Host", rows)


def _fact(key: str) -> Callable[[RunResult], Any]:
    return lambda r: host_facts(r).get(key)


def _package(name: str) -> Callable[[RunResult], Any]:
    return lambda r: package_versions(r).get(name)


def _memory_total(result: RunResult) -> str | None:
    total = host_facts(result).get("memory_total_bytes")
    return f"{total / (1024 * MIB):.1f} GiB" if isinstance(total, int | float) else None


def _versions(results: Sequence[RunResult]) -> Facts:
    rows = [
        ("allocator-sandbox", _values(results, sandbox_version)),
        ("git commit", _values(results, _commit)),
    ]
    names = dict.fromkeys(k for r in results for k in package_versions(r))
    rows += [(name, _values(results, _package(name))) for name in names]
    return Facts("versions", "Versions", rows)


def _commit(result: RunResult) -> str | None:
    commit, dirty = git_commit(result)
    return f"{commit} (with uncommitted changes)" if commit and dirty else commit


def _runs(results: Sequence[RunResult]) -> Table:
    header = ("run", "group", "repeat", "status", "thresholds", "note")
    rows = [
        (
            r.run_id,
            group_label(r),
            str(r.repeat + 1),
            r.status,
            ", ".join(
                f"{name} {'ok' if passed else '-' if passed is None else 'FAILED'}"
                for name, passed in threshold_outcomes(r)
            ),
            r.status_detail,
        )
        for r in results
    ]
    return Table(header, rows, numeric=(2,))  # the repeat
