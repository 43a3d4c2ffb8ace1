"""svg: figures as bare inline <svg> elements, and curves decimated for them."""

from __future__ import annotations

import re

import pytest

from sandbox.analysis import plot, svg
from tests.fakes import make_group, make_result


def test_decimated_keeps_the_extremes_and_equal_columns() -> None:
    run = make_result("glibc", interval_s=0.01)  # ~3800 samples
    n = len(run.samples["t_s"])
    assert n > 3000

    light = svg.decimated(run, max_points=300)

    kept = light.samples
    assert 200 <= len(kept["t_s"]) <= 302
    assert len({len(v) for v in kept.values()}) == 1
    assert max(kept["rss_bytes"]) == max(run.samples["rss_bytes"])
    assert min(kept["rss_bytes"]) == min(run.samples["rss_bytes"])
    assert kept["t_s"][0] == run.samples["t_s"][0] and kept["t_s"][-1] == run.samples["t_s"][-1]
    assert kept["t_s"] == sorted(kept["t_s"])
    assert light.summary == run.summary
    assert light.probes == run.probes  # ~35 probes: already few


def test_decimated_leaves_short_runs_alone() -> None:
    run = make_result("glibc")
    assert svg.decimated(run, max_points=10_000) == run


def test_figure_svg_is_a_bare_scalable_element_with_ids_of_its_own() -> None:
    runs = make_group("glibc", 2) + make_group("jemalloc", 2)

    rss = svg.figure_svg(lambda: plot.plot_rss(runs), "rss")
    parts = svg.figure_svg(lambda: plot.plot_decomposition(runs), "decomposition")

    for text in (rss, parts):
        assert text.startswith('<svg class="figure ')
        assert text.endswith("</svg>")
        assert "<?xml" not in text and "DOCTYPE" not in text and "<metadata" not in text
        assert re.search(r"<svg[^>]*\swidth=", text) is None
        assert "<text" in text  # text stays text
    ids = [re.findall(r'\sid="([^"]+)"', text) for text in (rss, parts)]
    assert ids[0] and ids[1]
    assert set(ids[0]).isdisjoint(ids[1])
    assert len(ids[0]) == len(set(ids[0]))
    referenced = set(re.findall(r'(?:url\(#|href="#)([^)"]+)', rss))
    assert referenced == set(ids[0])  # unused ids are dropped, used ones kept


def test_a_dollar_in_a_label_is_not_mathtext() -> None:
    runs = make_group("$\\nosuchcommand$", 2)
    text = svg.figure_svg(lambda: plot.plot_rss(runs), "rss")
    assert "$\\nosuchcommand$" in text


def test_figure_names_are_checked() -> None:
    with pytest.raises(ValueError, match="figure name 'a b'"):
        svg.figure_svg(lambda: plot.plot_rss(make_group("glibc", 1)), "a b")
