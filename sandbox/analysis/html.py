"""The report to share: one self-contained HTML page per experiment (`report.html`).

Readable offline and by mail: inline CSS and SVG, no script, no font or file fetched (the
page's Content-Security-Policy forbids both, so a slip would show, not leak). Top down: the
answer (plain words, the verdicts, the headline figures), the remedy ranking when there is one,
the comparison table, the plots (RSS, where the memory is), the warnings, then the settings,
the allocators, the host, the versions, the runs and the commands that reproduce it all.
Every text taken from a result file (allocator names, parameters, tags, notes) is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.analysis import svg
from sandbox.analysis.answer import plain_answer
from sandbox.analysis.caveats import MATCHING_SETTINGS
from sandbox.analysis.compare import Comparison, compare
from sandbox.analysis.groups import group_label
from sandbox.analysis.metrics import MIB
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
from sandbox.errors import SandboxError
from sandbox.results.model import RunResult, load_all

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPORT_NAME = "report.html"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
"""Nothing but the page itself: no script, no request of any kind."""


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
    """A bare `<svg>` element (from `svg.figure_svg`); trusted, inserted as it is."""
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
    from sandbox import __version__

    title = _title(c)
    when = f" on {generated_at:%Y-%m-%d %H:%M} UTC" if generated_at else ""
    sections = [
        _answer(c),
        _ranking(ranking) if ranking else "",
        _table(c),
        _plots(plots),
        _warnings(c),
        _settings(results),
        _allocators(results),
        _host(results),
        _versions(results),
        _runs(results),
        _commands(commands),
    ]
    body = "\n".join(s for s in sections if s)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f'<header><h1>{_e(title)}</h1>\n<p class="sub">{_e(_subtitle(c))}</p></header>\n'
        f"<main>\n{body}\n</main>\n"
        f"<footer>Written by allocator-sandbox {_e(__version__)}{_e(when)}. One file: "
        "it needs no network and no script.</footer>\n</body>\n</html>\n"
    )


STYLE = """
:root{color-scheme:light;--ink:#1b1f24;--muted:#59636e;--line:#d0d7de;--soft:#f6f8fa;
--good:#1a7f37;--bad:#cf222e}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1180px;padding:24px 28px 40px;color:var(--ink);
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.2em;margin:32px 0 8px;
border-bottom:1px solid var(--line);padding-bottom:4px}
.sub,footer,figcaption,.note{color:var(--muted)}footer{margin-top:40px;font-size:.85em}
.answer li{margin:4px 0}.answer .lead{font-size:1.08em}
pre{background:var(--soft);padding:10px 12px;overflow-x:auto;font-size:.85em;border-radius:6px}
code,pre,td.num{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
table{border-collapse:collapse;margin:6px 0;font-size:.9em}
th,td{border-bottom:1px solid var(--line);padding:4px 10px;text-align:left;vertical-align:top}
th{background:var(--soft)}td.num{text-align:right;white-space:nowrap}
td.better{color:var(--good);font-weight:600}td.worse{color:var(--bad);font-weight:600}
figure{margin:14px 0}svg.figure{display:block;width:100%;height:auto}
#reproduce pre{white-space:pre-wrap}.warnings li{margin:4px 0}details summary{cursor:pointer}
"""


def _e(text: Any) -> str:
    """Escaped text for HTML content and quoted attributes."""
    return escape(str(text), quote=True)


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


def _list(items: Iterable[str], cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    lines = "".join(f"<li>{_e(item)}</li>\n" for item in items)
    return f"<ul{attr}>\n{lines}</ul>" if lines else ""


def _answer(c: Comparison) -> str:
    answer = plain_answer(c)
    if not answer:
        answer = [f"only one group ({c.baseline}): nothing to compare it with"]
    parts = ['<section id="answer" class="answer">', "<h2>The answer</h2>", _list(answer, "lead")]
    if c.verdicts:
        parts += ["<h3>What held the memory</h3>", _list(c.verdicts)]
    if c.stairs:
        parts.append("<h3>The stair read</h3>")
    for stair in c.stairs:
        head, *rest = stair.lines
        parts += [f"<p>{_e(head)}</p>", _list(line.strip() for line in rest)]
    parts += [
        "<h3>Headline figures</h3>",
        f"<pre>{_e(chr(10).join(headlines(c)))}</pre>",
        "</section>",
    ]
    return "\n".join(parts)


def _ranking(r: Ranking) -> str:
    note = f'<p class="note">{_e(r.note)}</p>' if r.note else ""
    head = ['<section id="ranking">', f"<h2>{_e(r.title)}</h2>"]
    return "\n".join([*head, _grid(r.header, r.rows), note, "</section>"])


def _grid(
    header: Sequence[str] | None, rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()
) -> str:
    """A table of escaped cells (no header row when `header` is None)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header or ())
    thead = f"<thead><tr>{head}</tr></thead>\n" if header is not None else ""
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{_e(v)}</td>' if i in numeric else f"<td>{_e(v)}</td>"
            for i, v in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table>\n{thead}<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


def _table(c: Comparison) -> str:
    header = [*TABLE_HEADER, f"vs {c.baseline}"]
    rows = []
    for m, g, texts in table_rows(c):
        r = g.ratio(m.key)
        cls = "num"
        if r is not None and r.significant and r.ratio is not None:
            lower_is_better = m.key != "throughput_rps"
            better = (r.ratio < 1.0) == lower_is_better
            cls += " better" if better else " worse"
        metric, group, *numbers, vs = texts
        cells = [
            f"<td>{_e(metric)}</td>",
            f"<td>{_e(group)}</td>",
            *(f'<td class="num">{_e(n)}</td>' for n in numbers),
            f'<td class="{cls}">{_e(vs)}</td>',
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    return "\n".join(
        [
            '<section id="comparison">',
            "<h2>The comparison</h2>",
            f'<p class="note">Ratios are of geometric means, group {TIMES} the group compared '
            "with, with the confidence interval in brackets; green or red when the interval "
            "excludes 1.00.</p>",
            f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>",
            *rows,
            "</tbody>\n</table>",
            "</section>",
        ]
    )


def _plots(plots: Sequence[Plot]) -> str:
    if not plots:
        return ""
    figures = [
        f"<figure>\n{p.svg}\n<figcaption>{_e(p.caption)}</figcaption>\n</figure>" for p in plots
    ]
    return "\n".join(['<section id="plots">', "<h2>The curves</h2>", *figures, "</section>"])


def _warnings(c: Comparison) -> str:
    items = _list((w.message for w in c.warnings), "warnings") or (
        '<p class="note">None: enough repeats, stable values, the same settings everywhere.</p>'
    )
    return "\n".join(['<section id="warnings">', "<h2>Warnings</h2>", items, "</section>"])


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


def _facts(section: str, title: str, rows: Sequence[tuple[str, str]], note: str = "") -> str:
    extra = f'<p class="note">{_e(note)}</p>' if note else ""
    head = [f'<section id="{section}">', f"<h2>{_e(title)}</h2>", extra]
    return "\n".join([*head, _grid(None, rows), "</section>"])


def _settings(results: Sequence[RunResult]) -> str:
    rows = [(key, _values(results, get)) for key, _setting, get in MATCHING_SETTINGS]
    rows += [
        ("experiment parameters", _values(results, lambda r: r.parameters)),
        ("load.locustfile", _values(results, lambda r: str(r.load.spec.locustfile))),
        ("load.baseline_s", _values(results, lambda r: r.load.schedule.baseline_s)),
        ("load.spawn_rate", _values(results, lambda r: r.load.spec.spawn_rate)),
        ("server.max_body_bytes", _values(results, lambda r: r.server.max_body_bytes)),
        ("sampler.interval_s", _values(results, sampler_interval_s)),
    ]
    return _facts(
        "settings",
        "Settings",
        rows,
        "Values that differ between runs are joined with /; an experiment parameter varies "
        "on purpose, anything else is named in the warnings.",
    )


def _allocators(results: Sequence[RunResult]) -> str:
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
    return "\n".join(
        ['<section id="allocators">', "<h2>Allocators</h2>", _grid(header, rows), "</section>"]
    )


_HOST_KEYS = (
    "hostname",
    "python",
    "python_implementation",
    "glibc",
    "kernel",
    "machine",
    "cpu_count",
)


def _host(results: Sequence[RunResult]) -> str:
    rows = [(key, _values(results, _fact(key))) for key in _HOST_KEYS]
    rows.append(("memory_total", _values(results, _memory_total)))
    return _facts("host", "Host", rows)


def _fact(key: str) -> Callable[[RunResult], Any]:
    return lambda r: host_facts(r).get(key)


def _package(name: str) -> Callable[[RunResult], Any]:
    return lambda r: package_versions(r).get(name)


def _memory_total(result: RunResult) -> str | None:
    total = host_facts(result).get("memory_total_bytes")
    return f"{total / (1024 * MIB):.1f} GiB" if isinstance(total, int | float) else None


def _versions(results: Sequence[RunResult]) -> str:
    rows = [
        ("allocator-sandbox", _values(results, sandbox_version)),
        ("git commit", _values(results, _commit)),
    ]
    names = dict.fromkeys(k for r in results for k in package_versions(r))
    rows += [(name, _values(results, _package(name))) for name in names]
    return _facts("versions", "Versions", rows)


def _commit(result: RunResult) -> str | None:
    commit, dirty = git_commit(result)
    return f"{commit} (with uncommitted changes)" if commit and dirty else commit


def _runs(results: Sequence[RunResult]) -> str:
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
    return "\n".join(
        [
            '<section id="runs">',
            "<h2>Runs</h2>",
            f"<details><summary>{len(results)} runs, in the order they ran</summary>",
            _grid(header, rows, numeric=(2,)),
            "</details>",
            "</section>",
        ]
    )


def _commands(commands: Sequence[str]) -> str:
    if not commands:
        return ""
    return "\n".join(
        [
            '<section id="reproduce">',
            "<h2>To reproduce</h2>",
            '<p class="note">From the repository root, after its set-up (make setup).</p>',
            f"<pre><code>{_e(chr(10).join(commands))}</code></pre>",
            "</section>",
        ]
    )
