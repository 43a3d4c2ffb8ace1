"""RSS curves per group: every repeat thin, the median bold, the phases shaded.

matplotlib (object API on the Agg canvas, no pyplot) and numpy are imported inside the
functions, so `import sandbox.analysis.plot` stays cheap for the CLI.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sandbox.analysis import stairs
from sandbox.analysis.groups import choose_baseline, group_results, workload
from sandbox.errors import ConfigError, SandboxError
from sandbox.results.model import RunResult
from sandbox.results.sampling import Phase
from sandbox.units import MIB

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from sandbox.analysis.stair_read import StairRead

XAxis = Literal["time", "requests"]
MAX_COLUMNS = 5
GRID_POINTS = 400
PHASE_COLOURS = {
    "baseline": "#bdbdbd",
    "batch": "#fdae6b",
    "pause": "#9ecae1",
    "idle": "#a1d99b",
    "trim": "#bcbddc",
    "other": "#dadaeb",
}
PHASE_ALPHA = 0.28
PHASE_LABELS = {
    "baseline": "baseline",
    "batch": "load batch",
    "pause": "pause",
    "idle": "idle",
    "trim": "trim (memory asked back)",
    "other": "other phase",
}


def phase_kind(name: str) -> str:
    """baseline, batch, pause, idle or other, from a phase name like `batch-2`."""
    head = name.split("-", 1)[0]
    return head if head in PHASE_COLOURS and head != "other" else "other"


def requests_at(result: RunResult, t_s: Sequence[float]) -> list[float]:
    """Requests completed at each time: the server's `requests_done` probe, interpolated;
    falls back to spreading each Locust batch's requests evenly over the batch."""
    import numpy as np

    t_probe = result.probes.get("t_s", [])
    done = result.probes.get("requests_done", [])
    if len(t_probe) >= 2 and len(done) == len(t_probe):
        return [float(v) for v in np.interp(t_s, t_probe, done)]
    if result.load.stats:
        total = np.zeros(len(t_s))
        t = np.asarray(t_s, dtype=float)
        for b in result.load.stats:
            span = max(b.end_s - b.start_s, 1e-9)
            total += b.requests * np.clip((t - b.start_s) / span, 0.0, 1.0)
        return [float(v) for v in total]
    raise SandboxError(
        f"run {result.run_id} has no request counts (no requests_done probe, no batch stats); "
        "plot it with --x time"
    )


def plot_rss(
    results: Sequence[RunResult], x: XAxis = "time", baseline: str | None = None
) -> Figure:
    """One panel per group (baseline first) plus an overlay of every group's median.

    Each batch's end is marked with what it added to RSS (MiB, median over the ok runs), and
    each panel says whether RSS levels off or climbs (the stair read).

    Each repeat is a thin translucent line (dotted when the run did not finish ok; those are
    left out of the median); the bold line is the median of the ok repeats resampled onto a
    common time grid. Phases of the group's first run are shaded. y: RSS in MiB; x: seconds,
    or requests completed when `x="requests"`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if x not in ("time", "requests"):
        raise ConfigError(f"unknown x axis {x!r}; use time or requests")
    if not results:
        raise SandboxError("no results to plot; pass result files or folders")
    groups = group_results(results)
    base = choose_baseline(list(groups), baseline)
    labels = [base, *(lab for lab in groups if lab != base)]
    n_panels = len(labels) + 1
    nrows = math.ceil(n_panels / MAX_COLUMNS)
    ncols = math.ceil(n_panels / nrows)

    fig = Figure(figsize=(3.7 * ncols + 0.4, 3.6 * nrows + 1.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes_grid = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    axes: list[Axes] = list(axes_grid.flat)
    for extra in axes[n_panels:]:
        extra.remove()
    axes = axes[:n_panels]
    colours = [f"C{i % 10}" for i in range(len(labels))]
    overlay = axes[-1]
    kinds_seen: dict[str, None] = {}
    any_bad = False

    for ax, label, colour in zip(axes, labels, colours, strict=False):
        runs = groups[label]
        ok = [r for r in runs if r.status == "ok"]
        shade_source = (ok or runs)[0]
        kinds_seen.update(dict.fromkeys(_shade(ax, shade_source, x)))
        for r in runs:
            xs, ys = _curve(r, x)
            style = "-" if r.status == "ok" else ":"
            any_bad |= r.status != "ok"
            ax.plot(xs, ys, style, color=colour, lw=0.8, alpha=0.45)
        if ok:
            mx, my = _median_curve(ok, x)
            ax.plot(mx, my, "-", color=colour, lw=2.2, solid_capstyle="round")
            overlay.plot(mx, my, "-", color=colour, lw=2.0, label=label)
            _annotate_steps(ax, ok, x, colour)
        bad = len(runs) - len(ok)
        note = f"n={len(ok)}" + (f" (+{bad} not ok)" if bad else "")
        ax.set_title(f"{label}  ({note})", fontsize=10, loc="left")
    base_runs = groups[base]
    _shade(overlay, next((r for r in base_runs if r.status == "ok"), base_runs[0]), x)
    overlay.set_title(f"medians (phases of {base})", fontsize=10, loc="left")
    overlay.legend(fontsize=8, loc="lower right", frameon=True, framealpha=0.85)

    for i, ax in enumerate(axes):
        ax.grid(True, axis="y", lw=0.4, alpha=0.6)
        ax.tick_params(labelsize=8, labelbottom=True)
        ax.set_xlabel("time (s)" if x == "time" else "requests completed", fontsize=9)
        if i % ncols == 0:
            ax.set_ylabel("RSS (MiB)", fontsize=9)
        ax.margins(x=0.01)

    handles = _phase_handles(kinds_seen)
    handles += [
        Line2D([], [], color="0.35", lw=0.8, alpha=0.6, label="one run"),
        Line2D([], [], color="0.2", lw=2.2, label="median of runs"),
    ]
    if any_bad:
        handles.append(Line2D([], [], color="0.35", lw=0.8, ls=":", label="run not ok"))
    fig.legend(
        handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False
    )
    experiments = ", ".join(dict.fromkeys(r.experiment or "single run" for r in results))
    by = "time" if x == "time" else "requests completed"
    fig.suptitle(f"{experiments}: RSS by {by}  ·  {workload(results)}", fontsize=11)
    return fig


def _annotate_steps(ax: Axes, runs: Sequence[RunResult], x: XAxis, colour: str) -> None:
    """Each batch's end marked (a dot on the median stairs), with what the batch added to RSS
    (median over the runs, MiB) written above it, and the stair read of RSS in the panel's
    corner (`sandbox.analysis.stairs`)."""
    read = [s for s in map(stairs.stairs, runs) if s is not None]
    if not read:
        return
    n = min(len(s.steps) for s in read)
    median = stairs.median_stairs(read, n)
    first = runs[0]
    ends = {p.name: p.end_s for p in first.phases}
    prev = median.start.rss_bytes
    for step in median.steps:
        end = ends.get(f"batch-{step.batch}")
        if end is None:
            continue
        at = end if x == "time" else float(step.requests)
        y = step.rss_bytes / MIB
        ax.scatter([at], [y], s=14, color=colour, edgecolors="white", linewidths=0.6, zorder=5)
        ax.text(
            at,
            0.925,
            f"{(step.rss_bytes - prev) / MIB:+.0f}",
            transform=ax.get_xaxis_transform(),  # x in data, y in axes fractions: under the
            ha="right",  # batch numbers, on a white ground over the curve
            va="top",
            fontsize=6.5,
            color="0.1",
            bbox={"boxstyle": "round,pad=0.12", "fc": "white", "ec": "none", "alpha": 0.8},
        )
        prev = step.rss_bytes
    from sandbox.analysis import stair_read  # numpy: only when a plot is drawn

    rss = stair_read.read(read, "RSS")
    if rss is not None and x == "requests" and rss.state not in ("unsure", "few batches"):
        _draw_projection(ax, rss, float(median.steps[0].requests), colour)
    if rss is not None:
        ax.text(
            0.98,
            0.03,
            rss.short(),
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=6.5,
            color="0.2",
            bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "0.8", "alpha": 0.85},
        )


PROJECTION = 1.5
"""How far past the runs' last batch the growth read's curve is drawn (× the requests made)."""


def _draw_projection(ax: Axes, read: StairRead, first: float, colour: str) -> None:
    """The growth read's chosen curve of RSS: thin over the batches it was fitted on, dashed
    past them to PROJECTION × the requests the runs made, with its 90 % band there (the
    forecast's interval; none from 2 batch ends). Only on the requests axis, where the curve
    lives, and only when the read names one curve."""
    import numpy as np

    forecaster = read.forecaster
    if forecaster is None:
        return
    last = forecaster.last
    fitted = np.linspace(first, last, 40)
    ax.plot(
        fitted,
        [forecaster.curve.value(float(v)) / MIB for v in fitted],
        color=colour,
        linewidth=0.8,
        alpha=0.6,
        label="_fitted",
    )
    ahead = np.linspace(last, last * PROJECTION, 30)
    bands = [forecaster.band(float(v)) for v in ahead]
    ax.plot(
        ahead,
        [b.mid / MIB for b in bands],
        color=colour,
        linestyle="--",
        linewidth=1.0,
        label="_projection",
    )
    if forecaster.has_interval:
        ax.fill_between(
            ahead,
            [b.low / MIB for b in bands],
            [b.high / MIB for b in bands],
            color=colour,
            alpha=0.15,
            linewidth=0,
        )


def _curve(result: RunResult, x: XAxis) -> tuple[list[float], list[float]]:
    t = [float(v) for v in result.samples.get("t_s", [])]
    ys = [float(v) / MIB for v in result.samples.get("rss_bytes", [])]
    xs = t if x == "time" else requests_at(result, t)
    return xs, ys


def _median_curve(runs: Sequence[RunResult], x: XAxis) -> tuple[list[float], list[float]]:
    """Median across runs on a common time grid; for x=requests the x values are the median
    requests completed at each grid time too, so pauses stay vertical drops."""
    import numpy as np

    curves = [(r, [float(v) for v in r.samples.get("t_s", [])]) for r in runs]
    curves = [(r, t) for r, t in curves if len(t) >= 2]
    if not curves:
        return [], []
    start = max(t[0] for _, t in curves)
    end = min(t[-1] for _, t in curves)
    grid = np.linspace(start, end, GRID_POINTS)
    ys = np.array([np.interp(grid, t, r.samples["rss_bytes"]) for r, t in curves]) / MIB
    med_y = np.median(ys, axis=0)
    if x == "time":
        med_x = grid
    else:
        reqs = np.array([np.interp(grid, t, requests_at(r, t)) for r, t in curves])
        med_x = np.median(reqs, axis=0)
    return [float(v) for v in med_x], [float(v) for v in med_y]


def _phase_span(result: RunResult, phase: Phase, x: XAxis) -> tuple[float, float]:
    if x == "time":
        return phase.start_s, phase.end_s
    lo, hi = requests_at(result, [phase.start_s, phase.end_s])
    return lo, hi


def _shade(ax: Axes, result: RunResult, x: XAxis) -> list[str]:
    """Shade the phases of `result`; label load batches with their number. Returns the kinds."""
    kinds = []
    for phase in result.phases:
        lo, hi = _phase_span(result, phase, x)
        kind = phase_kind(phase.name)
        kinds.append(kind)
        if hi <= lo:
            # no requests during a pause or idle phase: it collapses to a line in requests
            ax.vlines(
                lo, 0, 1, transform=ax.get_xaxis_transform(), colors=PHASE_COLOURS[kind], lw=2.0
            )
            continue
        ax.axvspan(lo, hi, color=PHASE_COLOURS[kind], alpha=PHASE_ALPHA, lw=0, zorder=0)
        if kind == "batch":
            ax.text(
                (lo + hi) / 2,
                0.98,
                phase.name.split("-", 1)[-1],
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="top",
                fontsize=7,
                color="0.35",
            )
    return kinds


def save(fig: Figure, stem: Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write `fig` as STEM.png, STEM.svg, ... (a suffix on `stem` that is one of the formats is
    dropped); creates the folder. Returns the paths written."""
    stem = Path(stem)
    if stem.suffix.lstrip(".") in formats:
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.parent / f"{stem.name}.{fmt}"
        fig.savefig(path, format=fmt, dpi=150)
        paths.append(path)
    return paths


def output_stem(files: Sequence[Path], view: str = "rss", x: str = "time") -> Path:
    """Where `sandbox plot` writes without --out: beside the first result file and named after
    it (`rss` for several files), with `-allocator` for the allocator view and `-requests` for
    requests on the x axis."""
    first = files[0]
    folder = first if first.is_dir() else first.parent
    stem = "rss" if len(files) > 1 else first.name.split(".json")[0]
    if view == "allocator":
        stem += "-allocator"
    return folder / (stem + ("-requests" if x == "requests" else ""))


def _phase(result: RunResult, name: str) -> Phase | None:
    return next((p for p in result.phases if p.name == name), None)


def _phase_handles(kinds: Iterable[str]) -> list[Any]:
    """Legend patches for the phase kinds shaded, in a fixed order."""
    from matplotlib.patches import Patch

    seen = set(kinds)
    return [
        Patch(facecolor=PHASE_COLOURS[k], alpha=0.6, label=PHASE_LABELS[k])
        for k in PHASE_COLOURS
        if k in seen
    ]


def _median_column(
    runs: Sequence[RunResult], table: str, column: str, grid: Any
) -> list[float] | None:
    """Median across runs of `table[column]` (samples or probes) on the time `grid`, in MiB."""
    import numpy as np

    series = []
    for r in runs:
        cols = getattr(r, table)
        if column in cols and len(cols.get("t_s", [])) >= 2:
            series.append(np.interp(grid, cols["t_s"], cols[column]))
    if not series:
        return None
    return [float(v) / MIB for v in np.median(np.array(series), axis=0)]


def plot_decomposition(results: Sequence[RunResult], baseline: str | None = None) -> Figure:
    """Per group: RSS, what the allocator holds, and what the application has in use (medians).

    The band between in-use and held is memory the allocator keeps but nobody uses: heap
    fragmentation plus free pages not returned. A leak shows as in-use climbing with RSS instead.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ok = [r for r in results if r.status == "ok"]
    if not ok:
        raise SandboxError("no completed runs to plot")
    groups = group_results(ok)
    base = choose_baseline(list(groups), baseline)
    labels = [base, *(lab for lab in groups if lab != base)]
    ncols = min(len(labels), MAX_COLUMNS)
    nrows = math.ceil(len(labels) / ncols)
    fig = Figure(figsize=(3.9 * ncols + 0.4, 3.6 * nrows + 1.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes: list[Axes] = list(
        fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).flat
    )
    for extra in axes[len(labels) :]:
        extra.remove()
    kinds_seen: dict[str, None] = {}
    for i, (ax, label) in enumerate(zip(axes, labels, strict=False)):
        runs = groups[label]
        end = min(float(r.samples["t_s"][-1]) for r in runs if r.samples.get("t_s"))
        grid = np.linspace(0.0, end, GRID_POINTS)
        kinds_seen.update(dict.fromkeys(_shade(ax, runs[0], "time")))
        rss = _median_column(runs, "samples", "rss_bytes", grid)
        held = _median_column(runs, "probes", "alloc_held_bytes", grid)
        in_use = _median_column(runs, "probes", "alloc_in_use_bytes", grid)
        if in_use is not None:
            ax.fill_between(grid, 0, in_use, color="C2", alpha=0.35, lw=0, label="in use")
            ax.plot(grid, in_use, color="C2", lw=1.6)
        if held is not None and in_use is not None:
            ax.fill_between(
                grid, in_use, held, color="C3", alpha=0.3, lw=0, label="held, not in use"
            )
        if held is not None:
            ax.plot(grid, held, color="C3", lw=1.6, label="allocator holds")
        if rss is not None:
            ax.plot(grid, rss, color="0.15", lw=2.0, label="RSS")
        if runs[0].allocator.name.startswith("glibc") and _phase(runs[0], "trim"):
            ax.text(
                0.02,
                0.98,
                "after trim, mallinfo2 still counts\nthe returned pages as held",
                transform=ax.transAxes,
                ha="left",
                va="top",
                fontsize=6.5,
                color="0.3",
            )
        note = "" if held is not None else "  (no allocator counters)"
        ax.set_title(f"{label}  (n={len(runs)}){note}", fontsize=10, loc="left")
        ax.grid(True, axis="y", lw=0.4, alpha=0.6)
        ax.tick_params(labelsize=8, labelbottom=True)
        ax.set_xlabel("time (s)", fontsize=9)
        if i % ncols == 0:
            ax.set_ylabel("MiB", fontsize=9)
        ax.margins(x=0.01)
    handles, _ = axes[0].get_legend_handles_labels()
    handles += _phase_handles(kinds_seen)
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=8)
    experiments = ", ".join(dict.fromkeys(r.experiment or "single run" for r in ok))
    fig.suptitle(f"{experiments}: where the memory is (medians)  ·  {workload(ok)}", fontsize=11)
    return fig


def write_plots(results: Sequence[RunResult], stem: Path) -> list[Path]:
    """RSS by time (STEM.png/.svg), by requests (STEM-requests) when request counts exist, and
    the allocator's view (STEM-allocator) when the runs have its counters."""
    paths = save(plot_rss(results, x="time"), stem)
    if any("alloc_held_bytes" in r.probes for r in results if r.status == "ok"):
        paths += save(plot_decomposition(results), stem.with_name(stem.name + "-allocator"))
    try:
        by_requests = plot_rss(results, x="requests")
    except SandboxError:
        return paths
    return paths + save(by_requests, stem.with_name(stem.name + "-requests"))
