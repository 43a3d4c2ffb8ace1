"""plot: panels, lines, the requests axis and saving, on fake runs."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from matplotlib.lines import Line2D

from sandbox.analysis import plot, stair_read, stairs
from sandbox.errors import ConfigError, SandboxError
from sandbox.results.model import RunResult
from tests.fakes import make_group, make_result


def xs(line: Line2D) -> list[float]:
    return [float(v) for v in np.asarray(line.get_xdata(), dtype=float)]


def ys(line: Line2D) -> list[float]:
    return [float(v) for v in np.asarray(line.get_ydata(), dtype=float)]


@pytest.fixture
def results() -> list[RunResult]:
    return [
        *make_group("jemalloc", 2),
        *make_group("glibc", 3),
        make_result("glibc", repeat=5, status="memory-cap"),
    ]


def test_one_panel_per_group_plus_overlay(results: list[RunResult]) -> None:
    fig = plot.plot_rss(results)
    assert len(fig.axes) == 3
    glibc, jemalloc, overlay = fig.axes
    assert glibc.get_title(loc="left").startswith("glibc  (n=3 (+1 not ok))")  # baseline first
    assert jemalloc.get_title(loc="left").startswith("jemalloc  (n=2)")
    assert len(glibc.get_lines()) == 4 + 1  # every run (one not ok) + the median
    assert len(jemalloc.get_lines()) == 2 + 1
    assert [line.get_label() for line in overlay.get_lines()] == ["glibc", "jemalloc"]
    assert glibc.get_lines()[3].get_linestyle() == ":"  # the run that hit the memory cap
    assert "fake-experiment: RSS by time" in fig.get_suptitle()
    assert "tags large; 16 users; sleep 5 ms" in fig.get_suptitle()


def test_each_batch_end_is_marked_with_what_it_added_and_the_read_is_in_the_corner() -> None:
    from sandbox.analysis import stairs

    runs = make_group("glibc", 3)
    panel = plot.plot_rss(runs).axes[0]
    texts = [t.get_text() for t in panel.texts]
    median = stairs.median_stairs([s for s in map(stairs.stairs, runs) if s is not None], 3)
    added, prev = [], median.start.rss_bytes
    for step in median.steps:
        added.append(f"{(step.rss_bytes - prev) / 2**20:+.0f}")
        prev = step.rss_bytes
    assert [t for t in texts if t.startswith(("+", "-"))] == added
    assert texts[-1].startswith("RSS still climbing: ≈ ") and texts[-1].endswith(" req")
    dots = [c for c in panel.collections if np.asarray(c.get_offsets()).shape == (1, 2)]
    assert len(dots) == 3  # one dot at each batch's end


def test_the_read_s_curve_is_projected_dashed_with_its_band_on_the_requests_axis() -> None:
    runs = make_group("glibc", 3)
    last = stair_read.read([s for s in map(stairs.stairs, runs) if s is not None], "RSS")
    assert last is not None and last.forecaster is not None
    panel = plot.plot_rss(runs, x="requests").axes[0]
    dashed = [line for line in panel.get_lines() if line.get_label() == "_projection"]
    assert len(dashed) == 1 and dashed[0].get_linestyle() == "--"
    xs = np.asarray(dashed[0].get_xdata(), dtype=float)
    assert xs[0] == last.forecaster.last
    assert xs[-1] == pytest.approx(last.forecaster.last * plot.PROJECTION)
    ys = np.asarray(dashed[0].get_ydata(), dtype=float)
    expected = last.forecaster.curve.value(float(xs[-1])) / 2**20
    assert ys[-1] == pytest.approx(expected)
    on_time = plot.plot_rss(runs).axes[0]  # time: the curve lives on the requests axis only
    assert not [line for line in on_time.get_lines() if line.get_label() == "_projection"]


def test_median_is_bold_and_in_mib() -> None:
    results = make_group("glibc", 3)
    fig = plot.plot_rss(results)
    *runs, median = fig.axes[0].get_lines()
    assert median.get_linewidth() > runs[0].get_linewidth()
    peak_mib = results[0].summary.peak_rss_bytes / 2**20
    assert max(ys(runs[0])) == pytest.approx(peak_mib)
    assert min(xs(median)) >= 0


def test_baseline_selects_first_panel(results: list[RunResult]) -> None:
    fig = plot.plot_rss(results, baseline="jemalloc")
    assert fig.axes[0].get_title(loc="left").startswith("jemalloc")


def test_x_requests(results: list[RunResult]) -> None:
    fig = plot.plot_rss(results, x="requests")
    ax = fig.axes[1]
    run = make_group("jemalloc", 1)[0]
    total = sum(b.requests for b in run.load.stats)
    assert max(xs(ax.get_lines()[0])) == pytest.approx(total, rel=0.01)
    assert ax.get_xlabel() == "requests completed"
    read = ("_fitted", "_projection")  # the growth read's curve, drawn besides
    runs_and_median = [line for line in ax.get_lines() if line.get_label() not in read]
    assert len(runs_and_median) == 3  # two runs and their median


def test_x_requests_without_probes_uses_batch_stats() -> None:
    run = replace(make_result("glibc"), probes={})
    assert plot.requests_at(run, [0.0, 1e9]) == [0.0, sum(b.requests for b in run.load.stats)]
    plot.plot_rss([run], x="requests")
    bare = replace(run, load=replace(run.load, stats=[]))
    with pytest.raises(SandboxError, match="plot it with --x time"):
        plot.plot_rss([bare], x="requests")


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="unknown x axis 'rss'"):
        plot.plot_rss(make_group("glibc", 1), x="rss")  # type: ignore[arg-type]
    with pytest.raises(SandboxError, match="no results to plot"):
        plot.plot_rss([])


def test_save_png_and_svg(results: list[RunResult], tmp_path: Path) -> None:
    fig = plot.plot_rss(results)
    paths = plot.save(fig, tmp_path / "out" / "rss")
    assert paths == [tmp_path / "out" / "rss.png", tmp_path / "out" / "rss.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in paths[1].read_bytes()[:1000]
    assert plot.save(fig, tmp_path / "b.png", formats=("png",)) == [tmp_path / "b.png"]


def test_output_stem_is_beside_the_first_result(tmp_path: Path) -> None:
    one = tmp_path / "20260101T0000Z-glibc.json.gz"
    assert plot.output_stem([one]) == tmp_path / "20260101T0000Z-glibc"
    assert plot.output_stem([one], x="requests") == tmp_path / "20260101T0000Z-glibc-requests"
    several = [one, tmp_path / "other" / "b.json"]
    assert plot.output_stem(several, view="allocator") == tmp_path / "rss-allocator"
    assert plot.output_stem(several, view="rss", x="requests") == tmp_path / "rss-requests"


def test_import_is_cheap() -> None:
    code = (
        "import sys, sandbox.analysis.plot; "
        "print('matplotlib' in sys.modules, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_decomposition_draws_rss_held_and_in_use_per_group(tmp_path: Path) -> None:
    runs = [make_result(a, repeat=r) for a in ("glibc", "jemalloc") for r in range(2)]
    fig = plot.plot_decomposition(runs)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2
    for ax in axes:
        labels = [line.get_label() for line in ax.get_lines()]
        assert "RSS" in labels and "allocator holds" in labels
    assert axes[0].get_title(loc="left").startswith("glibc")
    written = plot.write_plots(runs, tmp_path / "rss")
    assert [p.name for p in written] == [
        "rss.png",
        "rss.svg",
        "rss-allocator.png",
        "rss-allocator.svg",
        "rss-requests.png",
        "rss-requests.svg",
    ]
