"""multiplicity: Holm's adjusted p-values, the confirmatory metric left alone, and how compare
and every report format show the adjusted p and which metrics are exploratory."""

from __future__ import annotations

import csv
import io
import json

import pytest

from sandbox.analysis import compare, multiplicity, report, stats
from sandbox.results.model import RunResult
from tests.fakes import fixed_run

NOTE = (
    "p on after-idle RSS (confirmatory) is unadjusted; Holm p on the other metrics "
    "(exploratory) is adjusted within each comparison and decides significance; the 95% "
    "intervals are unadjusted"
)


def test_holm_known_answer() -> None:
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> 0.06 (monotone)
    adjusted = multiplicity.holm([0.01, 0.04, 0.03, None, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, None, 0.02])
    assert adjusted[3] is None


def test_holm_caps_at_one_and_keeps_a_single_test() -> None:
    assert multiplicity.holm([0.5, 0.6, 0.9]) == [1.0, 1.0, 1.0]
    assert multiplicity.holm([0.03]) == [0.03]
    assert multiplicity.holm([None, None]) == [None, None]
    assert multiplicity.holm([]) == []


def test_holm_never_above_bonferroni_nor_below_the_raw_p() -> None:
    ps = [0.001, 0.2, 0.011, 0.012, 0.7, 0.04]
    for p, adj in zip(ps, multiplicity.holm(ps), strict=True):
        assert adj is not None
        assert p <= adj <= min(1.0, len(ps) * p)


def test_adjust_leaves_the_confirmatory_metric_alone() -> None:
    ratios = [
        stats.Ratio("after_idle_rss_mib", 1.1, 1.0, 1.2, 0.02, 3, 3),
        stats.Ratio("peak_rss_mib", 1.1, 1.0, 1.2, 0.02, 3, 3),
        stats.Ratio("p95_ms", 1.0, 0.9, 1.1, 0.5, 3, 3),
        stats.Ratio("failures", None, None, None, None, 3, 3, "baseline is zero"),
    ]
    head, peak, p95, failures = multiplicity.adjust(ratios)
    assert head == ratios[0] and head.role == "confirmatory" and head.p_adjusted is None
    assert (peak.exploratory, peak.p_adjusted, peak.role) == (True, 0.04, "exploratory")
    assert p95.p_adjusted == pytest.approx(0.5)
    assert failures.exploratory and failures.p_adjusted is None and not failures.significant


def _runs(after_idle_other: list[float], peak_other: list[float]) -> list[RunResult]:
    """glibc: after-idle 100/110/120 MiB, peak 150/160/170; the other allocator as given."""
    base = [
        fixed_run("glibc", v, repeat=i, peak=pk)
        for i, (v, pk) in enumerate(zip([100, 110, 120], [150, 160, 170], strict=True))
    ]
    other = [
        fixed_run("jemalloc", v, repeat=i, peak=pk)
        for i, (v, pk) in enumerate(zip(after_idle_other, peak_other, strict=True))
    ]
    return base + other


def test_an_exploratory_interval_excluding_one_is_not_significant_after_holm() -> None:
    # Same after-idle RSS, a higher peak with raw p ~ 0.02: alone it would be significant; as
    # one of 4 tested exploratory metrics (peak, end of load, throughput, p95) Holm gives 4p.
    c = compare.compare(_runs([100, 110, 120], [180, 190, 200]))
    g = c.group("jemalloc")
    peak = g.ratio("peak_rss_mib")
    assert peak is not None and peak.p_value is not None and peak.ci_low is not None
    tested = [r for r in g.ratios if r.exploratory and r.p_value is not None]
    assert [r.metric for r in tested] == [
        "peak_rss_mib",
        "end_of_load_rss_mib",
        "throughput_rps",
        "p95_ms",
    ]
    assert peak.p_value < 0.05 and peak.ci_low > 1.0  # the unadjusted view: a difference
    assert peak.p_adjusted == pytest.approx(4 * peak.p_value)
    assert not peak.significant
    text = "1.19 [1.04, 1.36] \u00d7 glibc (Holm p=0.092, n=3/3)"
    assert report.ratio_text(peak, "glibc") == text
    table = report.render(c, "table").splitlines()
    assert "jemalloc  peak       190.0 ± 10.0 MiB   " + text in table
    assert table[table.index(NOTE) - 1] == ""  # its own paragraph after the table


def test_the_confirmatory_metric_keeps_its_unadjusted_test() -> None:
    c = compare.compare(_runs([125, 135, 145], [175, 185, 195]))
    head = c.group("jemalloc").ratio("after_idle_rss_mib")
    assert head is not None and head.p_value is not None and head.ci_low is not None
    assert 0.005 < head.p_value < 0.05  # Holm over several metrics would lose it
    assert (head.role, head.p_adjusted) == ("confirmatory", None)
    assert head.significant
    line = next(x for x in report.render(c, "table").splitlines() if "jemalloc  after-idle" in x)
    assert line.endswith(f"(p={head.p_value:.3f}, n=3/3)")


def test_csv_and_json_carry_raw_and_adjusted_p_and_the_role() -> None:
    c = compare.compare(_runs([100, 110, 120], [180, 190, 200]))
    rows = list(csv.DictReader(io.StringIO(report.render(c, "csv"))))
    assert list(rows[0])[-3:] == ["significant", "p_adjusted", "role"]
    jem = {r["metric"]: r for r in rows if r["group"] == "jemalloc"}
    peak = c.group("jemalloc").ratio("peak_rss_mib")
    assert peak is not None and peak.p_adjusted is not None and peak.p_value is not None
    assert float(jem["peak_rss_mib"]["p_value"]) == pytest.approx(peak.p_value)
    assert float(jem["peak_rss_mib"]["p_adjusted"]) == pytest.approx(peak.p_adjusted)
    assert (jem["peak_rss_mib"]["role"], jem["peak_rss_mib"]["significant"]) == (
        "exploratory",
        "False",
    )
    assert (jem["after_idle_rss_mib"]["role"], jem["after_idle_rss_mib"]["p_adjusted"]) == (
        "confirmatory",
        "",
    )
    glibc = next(r for r in rows if r["group"] == "glibc")
    assert (glibc["p_adjusted"], glibc["role"]) == ("", "")

    data = json.loads(report.render(c, "json"))
    assert data["confirmatory_metric"] == "after_idle_rss_mib"
    vs = data["groups"][1]["vs_baseline"]
    assert vs["peak_rss_mib"]["p_adjusted"] == pytest.approx(peak.p_adjusted)
    assert (vs["peak_rss_mib"]["role"], vs["peak_rss_mib"]["significant"]) == (
        "exploratory",
        False,
    )
    assert (vs["after_idle_rss_mib"]["role"], vs["after_idle_rss_mib"]["p_adjusted"]) == (
        "confirmatory",
        None,
    )


def test_markdown_shows_the_note_and_a_single_group_has_none() -> None:
    c = compare.compare(_runs([100, 110, 120], [180, 190, 200]))
    md = report.render(c, "markdown")
    assert f"\n\n_{NOTE}_\n" in md
    assert "(Holm p=0.092, n=3/3) |" in md
    alone = compare.compare(_runs([100, 110, 120], [180, 190, 200])[:3])
    assert NOTE not in report.render(alone, "table")
    assert NOTE not in report.render(alone, "markdown")
