"""Compare runs per allocator (and experiment parameter): statistics and warnings, no printing.

Runs are grouped by a label, the allocator name plus `k=v` for each experiment parameter
(`glibc handler=async`). For every group and metric we report n, median, mean, sd, min, max;
every group is compared with a baseline group by the ratio of geometric means, with a 95 %
confidence interval and p-value from Welch's t-test on the log values (robust for few repeats
with unequal variances). Rendering lives in `sandbox.analysis.report`; `render` is re-exported here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from sandbox.analysis import tdist as _tdist
from sandbox.errors import ConfigError, SandboxError
from sandbox.results import RunResult

MIB = 1024 * 1024
CONFIDENCE = 0.95
UNSTABLE_CV = 0.10
"""Warn when sd exceeds this fraction of the mean (pyperf's threshold)."""
MIN_REPEATS = 3
OUTLIER_MIN_N = 4
OUTLIER_MADS = 3.0
"""A value is an outlier beyond median ± this many (normal-scaled) median absolute deviations."""
OUTLIER_MIN_REL = 0.05
"""... and at least this fraction of the median away from it (small n makes the MAD tiny)."""
MAD_SCALE = 1.4826


@dataclass(frozen=True)
class Metric:
    """One figure computed per run."""

    key: str
    """Name in JSON/CSV, with the unit in it."""
    label: str
    """Human name for tables."""
    unit: str
    """Unit shown next to the numbers."""
    extract: Callable[[RunResult], float | None] = field(repr=False, compare=False)
    """The value for one run; None when the run has no data for it."""


def _rss(attr: str) -> Callable[[RunResult], float | None]:
    """A summary figure in MiB; None when the run has none (older files, no allocator view)."""

    def extract(result: RunResult) -> float | None:
        value = getattr(result.summary, attr, None)
        return None if value is None else float(value) / MIB

    return extract


def _throughput(result: RunResult) -> float | None:
    """Requests over the time Locust itself measured (its req/s per batch), so Locust's own
    start-up and shut-down do not count as server time."""
    stats = [b for b in result.load.stats if b.rps > 0 and b.requests > 0]
    if not stats:
        return None
    return sum(b.requests for b in stats) / sum(b.requests / b.rps for b in stats)


def _p95(result: RunResult) -> float | None:
    if not result.load.stats:
        return None
    return float(statistics.median(b.p95_ms for b in result.load.stats))


def _failures(result: RunResult) -> float | None:
    return float(sum(b.failures for b in result.load.stats))


METRICS: tuple[Metric, ...] = (
    Metric("baseline_rss_mib", "baseline RSS", "MiB", _rss("baseline_rss_bytes")),
    Metric("peak_rss_mib", "peak RSS", "MiB", _rss("peak_rss_bytes")),
    Metric("end_of_load_rss_mib", "end-of-load RSS", "MiB", _rss("end_of_load_rss_bytes")),
    Metric("after_idle_rss_mib", "after-idle RSS", "MiB", _rss("after_idle_rss_bytes")),
    Metric("after_trim_rss_mib", "after-trim RSS", "MiB", _rss("after_trim_rss_bytes")),
    Metric("in_use_after_idle_mib", "in use after idle", "MiB", _rss("in_use_after_idle_bytes")),
    Metric("held_after_idle_mib", "held after idle", "MiB", _rss("held_after_idle_bytes")),
    Metric(
        "unused_after_idle_mib", "held unused after idle", "MiB", _rss("unused_after_idle_bytes")
    ),
    Metric("throughput_rps", "throughput", "req/s", _throughput),
    Metric("p95_ms", "p95 latency", "ms", _p95),
    Metric("failures", "failures", "requests", _failures),
)
METRIC_BY_KEY: dict[str, Metric] = {m.key: m for m in METRICS}
HEADLINE_METRICS = ("after_idle_rss_mib", "peak_rss_mib")

# Settings that must match across the compared runs unless an experiment parameter varies them.
# (result field, the experiment setting that varies it, how to read it from a run).
MATCHING_SETTINGS: tuple[tuple[str, str, Callable[[RunResult], Any]], ...] = (
    ("server.handler", "handler", lambda r: r.server.handler),
    ("server.sleep_ms", "sleep_ms", lambda r: r.server.sleep_ms),
    ("server.threads", "threads", lambda r: r.server.threads),
    ("server.pymalloc", "pymalloc", lambda r: r.server.pymalloc),
    ("load.tags", "tags", lambda r: ",".join(r.load.spec.tags)),
    ("load.users", "concurrency", lambda r: r.load.spec.users),
    ("load.iterations", "iterations", lambda r: r.load.spec.iterations),
    ("load.batches", "batches", lambda r: r.load.schedule.batches),
    ("load.pause_s", "pause_s", lambda r: r.load.schedule.pause_s),
    ("load.idle_s", "idle_s", lambda r: r.load.schedule.idle_s),
    ("load.model", "load", lambda r: _model_key(r)),
    ("load.workers", "load_workers", lambda r: r.load.spec.workers),
    ("server.workers", "workers", lambda r: r.server.workers),
    ("server.app", "app", lambda r: r.server.app),
    ("host.cpu_count", "cpu_count", lambda r: r.host.cpu_count),
    ("host.sandbox_version", "sandbox_version", lambda r: r.host.sandbox_version),
)


@dataclass(frozen=True)
class Stats:
    """Descriptive statistics of one metric within one group."""

    metric: str
    n: int
    median: float
    mean: float
    sd: float | None
    """Sample standard deviation (n-1); None with a single run."""
    min: float
    max: float
    values: tuple[float, ...]
    """The per-run values, in run order."""

    @property
    def cv(self) -> float | None:
        """sd / mean (coefficient of variation); None when undefined."""
        if self.sd is None or self.mean == 0:
            return None
        return self.sd / abs(self.mean)


@dataclass(frozen=True)
class Ratio:
    """One group against the baseline group for one metric."""

    metric: str
    ratio: float | None
    """Ratio of geometric means (group / baseline); None when undefined (zeros)."""
    ci_low: float | None
    """Lower end of the 95 % confidence interval; None when there is no interval."""
    ci_high: float | None
    p_value: float | None
    """Two-sided Welch t-test on log values; None when there is no test."""
    n: int
    n_baseline: int
    note: str = ""
    """Why the interval or ratio is missing, if it is."""

    @property
    def significant(self) -> bool:
        """True when the confidence interval excludes 1.0."""
        if self.ci_low is None or self.ci_high is None:
            return False
        return self.ci_low > 1.0 or self.ci_high < 1.0


@dataclass(frozen=True)
class Group:
    """The runs sharing one label."""

    label: str
    allocator: str
    parameters: dict[str, Any]
    run_ids: tuple[str, ...]
    stats: tuple[Stats, ...]
    ratios: tuple[Ratio, ...]
    """Against `reference`; empty for the baseline group itself."""
    reference: str = ""
    """The group compared with: the baseline allocator's group with the same parameters when
    there is one (so a sweep shows the allocator effect at each setting), else the baseline."""

    @property
    def n(self) -> int:
        return len(self.run_ids)

    def stat(self, metric: str) -> Stats | None:
        """Statistics for `metric`, None when no run had a value for it."""
        return next((s for s in self.stats if s.metric == metric), None)

    def ratio(self, metric: str) -> Ratio | None:
        """Comparison with the baseline for `metric`; None for the baseline group."""
        return next((r for r in self.ratios if r.metric == metric), None)


@dataclass(frozen=True)
class CompareWarning:
    """Something that makes the comparison less trustworthy, and what to do about it."""

    kind: str
    """unstable, outlier, few-repeats, settings-differ, skipped, failures or truncated."""
    message: str
    group: str | None = None
    metric: str | None = None


@dataclass(frozen=True)
class Comparison:
    """Everything `compare` found; render it with `render`."""

    baseline: str
    """Label of the group the others are compared with."""
    groups: tuple[Group, ...]
    """Baseline first, then the others in the order their first run appeared."""
    warnings: tuple[CompareWarning, ...]
    skipped: tuple[str, ...]
    """Run ids not compared because their status was not ok."""
    experiments: tuple[str, ...]
    workload: str
    """Short description: tags, users, sleep."""
    confidence: float = CONFIDENCE
    verdicts: tuple[str, ...] = ()
    """Per group, in plain words: live objects or free memory the allocator kept?"""

    def group(self, label: str) -> Group:
        """The group with this label (KeyError when absent)."""
        for g in self.groups:
            if g.label == label:
                return g
        raise KeyError(label)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (None for missing values)."""
        return {
            "baseline": self.baseline,
            "confidence": self.confidence,
            "experiments": list(self.experiments),
            "workload": self.workload,
            "verdicts": list(self.verdicts),
            "metrics": [{"key": m.key, "label": m.label, "unit": m.unit} for m in METRICS],
            "groups": [
                {
                    "label": g.label,
                    "compared_with": g.reference or None,
                    "allocator": g.allocator,
                    "parameters": dict(g.parameters),
                    "n": g.n,
                    "run_ids": list(g.run_ids),
                    "stats": {
                        s.metric: {
                            "n": s.n,
                            "median": s.median,
                            "mean": s.mean,
                            "sd": s.sd,
                            "min": s.min,
                            "max": s.max,
                            "values": list(s.values),
                        }
                        for s in g.stats
                    },
                    "vs_baseline": {
                        r.metric: {
                            "ratio": r.ratio,
                            "ci_low": r.ci_low,
                            "ci_high": r.ci_high,
                            "p_value": r.p_value,
                            "significant": r.significant,
                            "n": r.n,
                            "n_baseline": r.n_baseline,
                            "note": r.note,
                        }
                        for r in g.ratios
                    },
                }
                for g in self.groups
            ],
            "warnings": [
                {"kind": w.kind, "group": w.group, "metric": w.metric, "message": w.message}
                for w in self.warnings
            ],
            "skipped": list(self.skipped),
        }


def label(allocator: str, parameters: Mapping[str, Any]) -> str:
    """`allocator k=v ...`, parameters sorted by key: the name of a group of runs."""
    parts = [allocator, *(f"{k}={_fmt_param(v)}" for k, v in sorted(parameters.items()))]
    return " ".join(parts)


def group_label(result: RunResult) -> str:
    """The group a run belongs to: its allocator and experiment parameters."""
    return label(result.allocator.name, result.parameters)


def _fmt_param(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


def group_results(results: Sequence[RunResult]) -> dict[str, list[RunResult]]:
    """Results by `group_label`, in the order each label first appears."""
    groups: dict[str, list[RunResult]] = {}
    for r in results:
        groups.setdefault(group_label(r), []).append(r)
    return groups


def choose_baseline(labels: Sequence[str], baseline: str | None = None) -> str:
    """The baseline label: `baseline` if given (exact label, or an allocator name that matches
    one group), else `glibc`, else the first group whose allocator is glibc, else the first."""
    if not labels:
        raise SandboxError("no groups to compare")
    if baseline is not None:
        if baseline in labels:
            return baseline
        matches = [lab for lab in labels if lab.split(" ")[0] == baseline]
        if len(matches) == 1:
            return matches[0]
        choices = ", ".join(repr(lab) for lab in labels)
        if matches:
            raise ConfigError(
                f"baseline {baseline!r} matches several groups ({', '.join(matches)}); "
                f"pass the full label, one of: {choices}"
            )
        raise ConfigError(f"baseline {baseline!r} is not one of the groups; use one of: {choices}")
    if "glibc" in labels:
        return "glibc"
    return next((lab for lab in labels if lab.split(" ")[0] == "glibc"), labels[0])


def describe(values: Sequence[float], metric: str) -> Stats:
    """n, median, mean, sample sd, min and max of `values`."""
    sd = statistics.stdev(values) if len(values) > 1 else None
    return Stats(
        metric=metric,
        n=len(values),
        median=float(statistics.median(values)),
        mean=float(statistics.fmean(values)),
        sd=sd,
        min=float(min(values)),
        max=float(max(values)),
        values=tuple(float(v) for v in values),
    )


def log_ratio(
    values: Sequence[float],
    baseline: Sequence[float],
    metric: str = "",
    confidence: float = CONFIDENCE,
) -> Ratio:
    """Ratio of geometric means with a Welch t interval on the logs: exp(Δ ± t·se).

    Δ = mean(log values) - mean(log baseline), se = sqrt(s1²/n1 + s2²/n2), df by
    Welch-Satterthwaite. With a single run on either side there is no interval or p-value.
    """
    n, nb = len(values), len(baseline)
    if n == 0 or nb == 0:
        return Ratio(metric, None, None, None, None, n, nb, "no values")
    if min(values) <= 0 or min(baseline) <= 0:
        mean_b = statistics.fmean(baseline)
        if mean_b <= 0:
            return Ratio(metric, None, None, None, None, n, nb, "baseline is zero")
        plain = statistics.fmean(values) / mean_b
        return Ratio(metric, plain, None, None, None, n, nb, "zeros: ratio of means, no interval")
    lx = [math.log(v) for v in values]
    ly = [math.log(v) for v in baseline]
    delta = statistics.fmean(lx) - statistics.fmean(ly)
    ratio = math.exp(delta)
    if n < 2 or nb < 2:
        return Ratio(metric, ratio, None, None, None, n, nb, "no interval with one run")
    vx, vy = statistics.variance(lx) / n, statistics.variance(ly) / nb
    se = math.sqrt(vx + vy)
    if se == 0:
        p = 1.0 if delta == 0 else 0.0
        return Ratio(metric, ratio, ratio, ratio, p, n, nb, "no variation")
    df = (vx + vy) ** 2 / (vx**2 / (n - 1) + vy**2 / (nb - 1))
    t_crit = _tdist.ppf(0.5 + confidence / 2, df)
    p = _tdist.two_sided_p(delta / se, df)
    return Ratio(
        metric,
        ratio,
        math.exp(delta - t_crit * se),
        math.exp(delta + t_crit * se),
        p,
        n,
        nb,
    )


def outliers(values: Sequence[float]) -> list[int]:
    """Indexes of values beyond median ± 3 scaled MADs (and ≥ 5 % off); needs n ≥ 4."""
    if len(values) < OUTLIER_MIN_N:
        return []
    med = statistics.median(values)
    mad = MAD_SCALE * statistics.median(abs(v - med) for v in values)
    limit = max(OUTLIER_MADS * mad, OUTLIER_MIN_REL * abs(med))
    return [i for i, v in enumerate(values) if abs(v - med) > limit]


def compare(results: Sequence[RunResult], baseline: str | None = None) -> Comparison:
    """Group `results`, describe every metric, compare each group with the baseline, warn."""
    ok = [r for r in results if r.status == "ok"]
    bad = [r for r in results if r.status != "ok"]
    warnings: list[CompareWarning] = []
    if bad:
        warnings.append(_skipped_warning(bad))
    if not ok:
        raise SandboxError(
            f"none of the {len(results)} runs finished ok, nothing to compare; "
            "see each run's status_detail, fix the cause and re-run"
            if results
            else "no result files to compare; pass result files or folders (results/<experiment>)"
        )
    by_label = group_results(ok)
    base_label = choose_baseline(list(by_label), baseline)
    labels = [base_label, *(lab for lab in by_label if lab != base_label)]
    values = {lab: _metric_values(by_label[lab]) for lab in labels}

    base_allocator = by_label[base_label][0].allocator.name
    groups = []
    for lab in labels:
        runs = by_label[lab]
        twin = label(base_allocator, runs[0].parameters)
        ref = twin if twin in by_label and twin != lab else base_label
        stats = tuple(
            describe([v for _, v in values[lab][m.key]], m.key)
            for m in METRICS
            if values[lab][m.key]
        )
        ratios: tuple[Ratio, ...] = ()
        if lab != base_label:
            ratios = tuple(
                log_ratio(
                    [v for _, v in values[lab][m.key]],
                    [v for _, v in values[ref][m.key]],
                    m.key,
                )
                for m in METRICS
            )
        groups.append(
            Group(
                label=lab,
                allocator=runs[0].allocator.name,
                parameters=dict(runs[0].parameters),
                run_ids=tuple(r.run_id for r in runs),
                stats=stats,
                ratios=ratios,
                reference="" if lab == base_label else ref,
            )
        )
        warnings += _group_warnings(lab, runs, values[lab])
    warnings += _settings_warnings(ok)
    return Comparison(
        baseline=base_label,
        groups=tuple(groups),
        warnings=tuple(warnings),
        skipped=tuple(r.run_id for r in bad),
        experiments=tuple(dict.fromkeys(r.experiment for r in ok if r.experiment)),
        workload=workload(ok),
        verdicts=tuple(verdicts(ok)),
    )


def _metric_values(runs: Sequence[RunResult]) -> dict[str, list[tuple[RunResult, float]]]:
    out: dict[str, list[tuple[RunResult, float]]] = {}
    for m in METRICS:
        pairs = [(r, m.extract(r)) for r in runs]
        out[m.key] = [(r, v) for r, v in pairs if v is not None and math.isfinite(v)]
    return out


def workload(results: Sequence[RunResult]) -> str:
    """`tags large; 16 users; sleep 5 ms` (values joined with `/` when runs differ)."""

    def joined(values: Sequence[Any]) -> str:
        return "/".join(str(v) for v in dict.fromkeys(values))

    tags = joined([",".join(r.load.spec.tags) or "all" for r in results])
    users = joined([r.load.spec.users for r in results])
    sleep = joined([r.server.sleep_ms for r in results])
    return f"tags {tags}; {users} users; sleep {sleep} ms"


def _skipped_warning(bad: Sequence[RunResult]) -> CompareWarning:
    counts: dict[str, int] = {}
    for r in bad:
        counts[r.status] = counts.get(r.status, 0) + 1
    why = ", ".join(f"{c} {s}" for s, c in counts.items())
    ids = ", ".join(r.run_id for r in bad[:5]) + (", ..." if len(bad) > 5 else "")
    return CompareWarning(
        "skipped",
        f"skipped {len(bad)} run(s) that did not finish ok ({why}: {ids}); "
        "read their status_detail, fix the cause and re-run them so every group has its repeats",
    )


def _model_key(result: RunResult) -> str:
    """The load model with its parameters (format 1-2 results: drill's iterations)."""
    model = result.load.spec.model
    if model.name == "iterations":
        return "iterations"
    described = {f.name: getattr(model, f.name) for f in fields(model) if f.name != "users"}
    return ", ".join(f"{k} {v}" for k, v in described.items())


def _truncated(result: RunResult) -> bool:
    load = result.load.spec
    if load.model.name != "iterations":
        return False  # a model with a duration: the run notes a rate it did not reach
    planned = load.iterations * len(set(load.tags))
    return any(b.requests < planned for b in result.load.stats)


def _group_warnings(
    label: str, runs: Sequence[RunResult], values: Mapping[str, list[tuple[RunResult, float]]]
) -> list[CompareWarning]:
    out: list[CompareWarning] = []
    short = [r.run_id for r in runs if _truncated(r)]
    if short:
        out.append(
            CompareWarning(
                "truncated",
                f"{label}: {len(short)} run(s) sent fewer requests than planned (a batch hit its "
                f"time limit: {short[0]}); raise run.batch_timeout_s or lower the iterations",
                group=label,
            )
        )
    if len(runs) < MIN_REPEATS:
        out.append(
            CompareWarning(
                "few-repeats",
                f"{label}: only {len(runs)} run(s); add repeats: at least {MIN_REPEATS} per "
                "group (5 for a tighter interval), otherwise intervals are wide or missing",
                group=label,
            )
        )
    for m in METRICS:
        pairs = values[m.key]
        if m.key == "failures" or len(pairs) < 2:
            continue
        nums = [v for _, v in pairs]
        mean = statistics.fmean(nums)
        sd = statistics.stdev(nums)
        if mean != 0 and sd > UNSTABLE_CV * abs(mean):
            out.append(
                CompareWarning(
                    "unstable",
                    f"{label}: {m.label} varies a lot between runs (sd {sd / abs(mean):.0%} of "
                    "the mean); close other busy programs, pin the CPU frequency, or add "
                    "repeats",
                    group=label,
                    metric=m.key,
                )
            )
        med = statistics.median(nums)
        for i in outliers(nums):
            run = pairs[i][0]
            out.append(
                CompareWarning(
                    "outlier",
                    f"{label}: {m.label} of run {run.run_id} (repeat {run.repeat}) is an "
                    f"outlier ({nums[i]:.1f} {m.unit} vs median {med:.1f} {m.unit}); check "
                    "what else ran on the host then, and re-run it or add repeats",
                    group=label,
                    metric=m.key,
                )
            )
    failed = sum(v for _, v in values["failures"])
    if failed > 0:
        nruns = sum(1 for _, v in values["failures"] if v > 0)
        out.append(
            CompareWarning(
                "failures",
                f"{label}: {failed:.0f} request(s) failed in {nruns} run(s); latency and "
                "throughput are not comparable: check the server log, then lower users or "
                "raise the server's limits",
                group=label,
                metric="failures",
            )
        )
    return out


def _settings_warnings(results: Sequence[RunResult]) -> list[CompareWarning]:
    varied = {str(k).lower() for r in results for k in r.parameters}
    out: list[CompareWarning] = []
    for key, setting, get in MATCHING_SETTINGS:
        if key in varied or setting in varied or key.split(".", 1)[1] in varied:
            continue
        seen: dict[str, dict[str, int]] = {}
        for r in results:
            per_label = seen.setdefault(str(get(r)), {})
            lab = group_label(r)
            per_label[lab] = per_label.get(lab, 0) + 1
        if len(seen) < 2:
            continue
        detail = "; ".join(
            f"{value} ({', '.join(f'{lab} x{c}' for lab, c in labs.items())})"
            for value, labs in seen.items()
        )
        out.append(
            CompareWarning(
                "settings-differ",
                f"{key} differs between the compared runs: {detail}; compare runs made with "
                "the same settings, or make it an experiment parameter",
                metric=None,
            )
        )
    return out


def render(comparison: Comparison, fmt: str = "table") -> str:
    """Format a comparison as `table`, `markdown`, `csv` or `json` text."""
    from sandbox.analysis import report

    return report.render(comparison, fmt)


def _median_of(runs: Sequence[RunResult], attr: str) -> float | None:
    values = [getattr(r.summary, attr) for r in runs if r.status == "ok"]
    present = [float(v) for v in values if v is not None]
    return statistics.median(present) if present else None


def verdicts(results: Sequence[RunResult]) -> list[str]:
    """Per group, in plain words: where did the RSS growth go? Medians over the group's runs.

    RSS growth (baseline to after idle) splits into what the application still has allocated
    (live growth), what the allocator holds but nobody uses (free memory kept: fragmentation
    and unreturned pages), and memory malloc never sees (CPython's own small-object arenas,
    thread stacks), which is RSS growth minus the growth of what the allocator holds.
    """
    lines = []
    for label, runs in group_results([r for r in results if r.status == "ok"]).items():
        rss_growth = _diff(
            _median_of(runs, "after_idle_rss_bytes"), _median_of(runs, "baseline_rss_bytes")
        )
        if rss_growth is None:
            continue
        live_growth = _diff(
            _median_of(runs, "in_use_after_idle_bytes"), _median_of(runs, "in_use_baseline_bytes")
        )
        held_growth = _diff(
            _median_of(runs, "held_after_idle_bytes"), _median_of(runs, "held_baseline_bytes")
        )
        unused = _diff(held_growth, live_growth)  # growth of free memory the allocator keeps
        trimmed = _diff(
            _median_of(runs, "after_idle_rss_bytes"), _median_of(runs, "after_trim_rss_bytes")
        )
        name = runs[0].allocator.name
        words = [f"{label}: RSS grew {_mib(rss_growth)} MiB from baseline to after idle"]
        if live_growth is not None:
            words.append(f"live allocations grew {_mib(live_growth)} MiB")
        if unused is not None:
            words.append(f"free memory {name} keeps grew {_mib(unused)} MiB")
        elif held_growth is not None:
            words.append(f"{name} gives no in-use count, so live and free cannot be told apart")
        else:
            words.append("these runs have no allocator counters (the server had no /debug/memory)")
        outside = None if held_growth is None else rss_growth - held_growth
        if outside is not None and outside >= 16 * MIB:
            words.append(f"{_mib(outside)} MiB grew outside malloc (pymalloc arenas, stacks)")
        if trimmed is not None:
            words.append(f"asking for memory back returned {_mib(trimmed)} MiB of RSS")
        verdict = _classify(rss_growth, live_growth, unused, outside)
        lines.append("; ".join(words) + (f" -> {verdict}" if verdict else ""))
    return lines


def _mib(value: float) -> str:
    """Whole MiB, without a `-0` for a small negative change."""
    return f"{round(value / MIB):d}"  # an int: no "-0"


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _classify(
    rss_growth: float, live: float | None, unused: float | None, outside: float | None
) -> str:
    """Name the largest share of the growth, when the counters allow it."""
    if rss_growth < 16 * MIB:
        return "little growth"
    if live is None or unused is None:
        return ""
    shares = {
        "live allocations: a leak or a cache, not the allocator": live,
        "free memory held by the allocator: fragmentation / unreturned pages": unused,
        "memory outside malloc: CPython's small-object arenas; "
        "try --pymalloc off to put it under the allocator": outside or 0.0,
    }
    what, largest = max(shares.items(), key=lambda kv: kv[1])
    return (
        f"mostly {what}" if largest >= 0.5 * rss_growth else f"mixed; the largest share is {what}"
    )
