"""The plain answer: per group, one sentence on the memory it keeps after the load.

After-idle RSS is what a service keeps once the load is gone, where fragmentation shows; the
sentence says how much less or more than the group compared with, and whether the difference
is real (the confidence interval excludes 1.00) or cannot be told apart yet.
"""

from __future__ import annotations

from sandbox.analysis.compare import Comparison
from sandbox.analysis.report import ratio_text

ANSWER_METRIC = "after_idle_rss_mib"


def _change(ratio: float) -> str:
    """`38 % less`, `12 % more` or `about as much`."""
    percent = round(abs(1.0 - ratio) * 100)
    if percent == 0:
        return "about as much"
    return f"{percent} % {'less' if ratio < 1.0 else 'more'}"


def plain_answer(c: Comparison) -> list[str]:
    """One sentence per group other than the baseline, in the comparison's order."""
    lines = []
    for g in c.groups:
        if g.label == c.baseline:
            continue
        ref = g.reference or c.baseline
        r = g.ratio(ANSWER_METRIC)
        if r is None or r.ratio is None:
            why = f" ({r.note})" if r is not None and r.note else ""
            lines.append(f"{g.label}: no after-idle RSS to compare with {ref}{why}")
            continue
        change = _change(r.ratio)
        than = "as" if change == "about as much" else "than"
        figures = ratio_text(r, ref)
        if r.ci_low is None or r.ci_high is None:
            lines.append(
                f"{g.label} kept {change} memory after the load {than} {ref}, but without a "
                f"confidence interval ({figures}); add repeats before deciding"
            )
        elif r.significant:
            lines.append(f"{g.label} keeps {change} memory after the load {than} {ref}: {figures}")
        else:
            lines.append(
                f"{g.label} and {ref} cannot be told apart after the load yet ({figures}): the "
                "interval contains 1.00; add repeats or make the workload longer"
            )
    return lines
