"""report: every render format of one comparison, and an unknown format."""

from __future__ import annotations

import csv
import io
import json

import pytest

from sandbox.analysis import compare, report
from sandbox.errors import ConfigError
from tests.fakes import fixed_runs


@pytest.fixture
def comparison() -> compare.Comparison:
    return compare.compare(
        fixed_runs("glibc", [100, 110, 120])
        + fixed_runs("jemalloc", [50, 55, 60])
        + fixed_runs("mimalloc", [70])
    )


def test_render_table(comparison: compare.Comparison) -> None:
    text = report.render(comparison, "table")
    lines = text.splitlines()
    r = comparison.group("jemalloc").ratio("after_idle_rss_mib")
    assert r is not None and r.ci_low is not None and r.ci_high is not None
    expected = f"0.50 [{r.ci_low:.2f}, {r.ci_high:.2f}] \u00d7 glibc (p<0.001, n=3/3)"
    headline = next(line for line in lines if line.startswith("jemalloc  after-idle"))
    assert headline == "jemalloc  after-idle  55.0 ±  5.0 MiB   " + expected
    assert any(line.startswith("glibc     after-idle 110.0 ± 10.0 MiB") for line in lines)
    row = next(line for line in lines if line.startswith("after-idle RSS (MiB)"))
    assert row.split()[3:10] == ["glibc", "3", "110.0", "110.0", "±", "10.0", "100.0"]
    assert "0.64 \u00d7 glibc (n=1/3, no interval with one run)" in text
    assert lines[-1] == (
        "WARNING: mimalloc: only 1 run(s); add repeats: at least 3 per group (5 for a tighter "
        "interval), otherwise intervals are wide or missing"
    )


def test_render_markdown(comparison: compare.Comparison) -> None:
    text = report.render(comparison, "markdown")
    rows = [line for line in text.splitlines() if line.startswith("| after-idle RSS")]
    assert rows == [
        "| after-idle RSS (MiB) | glibc | 3 | 110.0 | 110.0 ± 10.0 | 100.0 | 120.0 |  |"
    ]
    assert "| jemalloc | 3 | 55.0 | 55.0 ± 5.0 | 50.0 | 60.0 | 0.50 [" in text
    assert "**Warnings**" in text


def test_render_csv(comparison: compare.Comparison) -> None:
    rows = list(csv.DictReader(io.StringIO(report.render(comparison, "csv"))))
    # one row per group and metric with data (the fixture's summaries have no allocator counters)
    assert len(rows) == sum(len(g.stats) for g in comparison.groups) == 3 * 7
    assert list(rows[0]) == list(report.CSV_COLUMNS)
    row = next(r for r in rows if r["group"] == "jemalloc" and r["metric"] == "after_idle_rss_mib")
    assert float(row["mean"]) == pytest.approx(55.0)
    assert float(row["sd"]) == pytest.approx(5.0)
    assert float(row["ratio"]) == pytest.approx(0.5)
    assert float(row["ci_low"]) < 0.5 < float(row["ci_high"])
    assert row["significant"] == "True"
    base = next(r for r in rows if r["group"] == "glibc" and r["metric"] == "after_idle_rss_mib")
    assert (base["ratio"], base["p_value"], base["baseline"]) == ("", "", "glibc")
    single = next(r for r in rows if r["group"] == "mimalloc" and r["metric"] == "peak_rss_mib")
    assert single["sd"] == "" and single["ci_low"] == ""


def test_render_json(comparison: compare.Comparison) -> None:
    data = json.loads(report.render(comparison, "json"))
    assert data == comparison.to_dict()
    assert data["baseline"] == "glibc"
    jem = data["groups"][1]
    assert jem["label"] == "jemalloc"
    assert jem["stats"]["after_idle_rss_mib"]["values"] == [50.0, 55.0, 60.0]
    vs = jem["vs_baseline"]["after_idle_rss_mib"]
    assert vs["ratio"] == pytest.approx(0.5) and vs["significant"] is True
    assert data["groups"][2]["vs_baseline"]["after_idle_rss_mib"]["ci_low"] is None
    assert [w["kind"] for w in data["warnings"]] == ["few-repeats"]


def test_render_unknown_format(comparison: compare.Comparison) -> None:
    with pytest.raises(ConfigError, match="unknown format 'html'; use one of: table, markdown"):
        report.render(comparison, "html")


CRAFTED = "evil<img src=x onerror=alert(1)>`<script>alert(2)</script>`|[x](javascript:alert(3))"


def test_md_escape_makes_result_text_literal() -> None:
    assert report._md_escape("a|b <i>&amp; `c` \\ [d](e) [f]\nnext") == (
        "a\\|b &lt;i&gt;&amp;amp; \\`c\\` \\\\ [d\\](e) [f] next"
    )


def test_markdown_of_a_crafted_allocator_name_renders_no_html() -> None:
    """A shared result file's allocator name reaches the notebook's display(Markdown(...)):
    rendered by a CommonMark renderer that passes raw HTML through, it stays text."""
    from markdown_it import MarkdownIt

    comparison = compare.compare(fixed_runs("glibc", [100, 110, 120]) + fixed_runs(CRAFTED, [50]))
    text = report.render(comparison, "markdown")
    page = MarkdownIt("commonmark", {"html": True}).enable("table").render(text)

    assert "<img" not in page
    assert "<script" not in page
    assert "<a " not in page  # no javascript: link either
    # the name is still there, as text, in the headline, the table and the warning
    visible = "evil&lt;img src=x onerror=alert(1)&gt;"
    assert page.count(visible) >= 3, page
