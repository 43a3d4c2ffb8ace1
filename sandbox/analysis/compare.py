"""Compare runs per allocator (and experiment parameter): the `Comparison` and `compare()`.

Runs are grouped by a label, the allocator name plus `k=v` for each experiment parameter
(`glibc handler=async`, see `groups`). For every group and metric (`metrics`) we report n,
median, mean, sd, min, max; every group is compared with a baseline group by the ratio of
geometric means, with a 95 % confidence interval and p-value from Welch's t-test on the log
values (`stats`); after-idle RSS is the confirmatory metric, the others are Holm-adjusted
within each comparison (`multiplicity`). Warnings come from `caveats`, the plain-words verdicts
from `verdict`. No printing: `sandbox.analysis.report` renders a `Comparison`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.analysis.caveats import (
    CompareWarning,
    group_warnings,
    settings_warnings,
    skipped_warning,
    uneven_load_warning,
)
from sandbox.analysis.groups import choose_baseline, group_results, references, workload
from sandbox.analysis.metrics import CONFIRMATORY_METRIC, METRICS, metric_values
from sandbox.analysis.multiplicity import adjust
from sandbox.analysis.stair_read import GroupStairs, group_lines
from sandbox.analysis.stats import CONFIDENCE, Ratio, Stats, describe, log_ratio
from sandbox.analysis.verdict import verdicts
from sandbox.errors import SandboxError
from sandbox.results.model import RunResult


@dataclass(frozen=True)
class Group:
    """The runs sharing one label."""

    label: str
    allocator: str
    parameters: dict[str, Any]
    run_ids: tuple[str, ...]
    stats: tuple[Stats, ...]
    ratios: tuple[Ratio, ...]
    """Against `reference`, the exploratory ones Holm-adjusted among themselves (`multiplicity`);
    empty for the baseline group itself."""
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
class Comparison:
    """Everything `compare` found; render it with `sandbox.analysis.report.render`."""

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
    stairs: tuple[GroupStairs, ...] = ()
    """Per group, the stair read: what each batch added, levels off or still climbing."""

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
            "stairs": {s.label: list(s.lines) for s in self.stairs},
            "stair_reads": {s.label: [r.to_dict() for r in s.reads] for s in self.stairs},
            "confirmatory_metric": CONFIRMATORY_METRIC,
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
                            "p_adjusted": r.p_adjusted,
                            "role": r.role,
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


def compare(
    results: Sequence[RunResult], baseline: str | None = None, limit_bytes: float | None = None
) -> Comparison:
    """Group `results`, describe every metric, compare each group with the baseline, warn; the
    stair read projects RSS to `limit_bytes` (else to the runs' peak_rss or growth limit)."""
    ok = [r for r in results if r.status == "ok"]
    bad = [r for r in results if r.status != "ok"]
    warnings: list[CompareWarning] = []
    if bad:
        warnings.append(skipped_warning(bad))
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
    values = {lab: metric_values(by_label[lab]) for lab in labels}

    refs = references(by_label, base_label)
    groups = []
    for lab in labels:
        runs = by_label[lab]
        ref = refs.get(lab, base_label)
        stats = tuple(
            describe([v for _, v in values[lab][m.key]], m.key)
            for m in METRICS
            if values[lab][m.key]
        )
        ratios: tuple[Ratio, ...] = ()
        if lab != base_label:
            ratios = adjust(
                [
                    log_ratio(
                        [v for _, v in values[lab][m.key]],
                        [v for _, v in values[ref][m.key]],
                        m.key,
                    )
                    for m in METRICS
                ]
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
        warnings += group_warnings(lab, runs, values[lab])
    warnings += settings_warnings(ok)
    uneven = uneven_load_warning(by_label, refs)
    if uneven is not None:
        warnings.append(uneven)
    return Comparison(
        baseline=base_label,
        groups=tuple(groups),
        warnings=tuple(warnings),
        skipped=tuple(r.run_id for r in bad),
        experiments=tuple(dict.fromkeys(r.experiment for r in ok if r.experiment)),
        workload=workload(ok),
        verdicts=tuple(verdicts(ok)),
        stairs=tuple(
            read
            for lab in labels
            if (read := group_lines(lab, by_label[lab], limit_bytes)) is not None
        ),
    )
