"""The corpus's confusion table: truth x verdict, per allocator (pure; no processes).

A verdict is right when it names the truth (`right`), alone or as a part of a mixed verdict
(each part at least half the largest: measured growth, not a guess); "cannot tell" when it
says so, or when it names live growth without telling a leak from a cache (then the truth was
not guessed, only not told); wrong otherwise, and a wrong verdict stays in the table with what
it said.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.real_cases import manifest
from benchmarks.verdict_truths import name_of
from sandbox.analysis import verdict
from sandbox.analysis.verdict import Verdict

RIGHT, CANNOT_TELL, WRONG, NO_RESULT = "right", "cannot tell", "wrong", "no result"
NAMES = {
    manifest.LEAK: (verdict.LEAK,),
    manifest.NATIVE: (verdict.NATIVE,),
    manifest.CYCLES: (verdict.CYCLES,),
    manifest.CACHE: (verdict.CACHE,),
    manifest.ALLOCATOR: (verdict.FREE_KEPT, verdict.PYMALLOC_FRAGMENTATION),
    manifest.LITTLE: (verdict.LITTLE_GROWTH,),
}
"""The verdict classes that name each truth."""
UNDECIDED = (verdict.CANNOT_TELL, verdict.LIVE)
"""Verdicts that say what they cannot tell rather than guess."""


@dataclass(frozen=True)
class Outcome:
    """One run of the corpus: a case's version under an allocator, and what the verdict said."""

    case: str
    version: str
    truth: str
    allocator: str
    verdict: Verdict | None
    """None: the run gave no result (it failed; `note` says why)."""
    seconds: float
    note: str = ""


def score(truth: str, v: Verdict | None) -> str:
    """RIGHT, CANNOT_TELL, WRONG, or NO_RESULT for a verdict on a case whose truth is `truth`."""
    if v is None:
        return NO_RESULT
    if v.kind in NAMES[truth] or (
        v.kind == verdict.MIXED and any(p in NAMES[truth] for p in v.parts)
    ):
        return RIGHT
    if v.kind in UNDECIDED:
        return CANNOT_TELL
    return WRONG


def cell(v: Verdict | None) -> str:
    """A verdict's class, short, for a table cell."""
    return "(no result)" if v is None else name_of(v)


def _markdown(head: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
        for r in [head, *body]
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return lines


def confusion(outcomes: Sequence[Outcome], allocator: str) -> str:
    """Truth x verdict class for one allocator, with right / cannot tell / wrong per truth."""
    mine = [o for o in outcomes if o.allocator == allocator]
    cells = Counter((o.truth, cell(o.verdict)) for o in mine)
    columns = sorted({c for _, c in cells})
    scores = Counter((o.truth, score(o.truth, o.verdict)) for o in mine)
    head = [f"{allocator}: truth \\ verdict", *columns, RIGHT, CANNOT_TELL, WRONG]
    body = []
    for truth in manifest.TRUTHS:
        if any(o.truth == truth for o in mine):
            counts = [str(cells[truth, c] or "") for c in columns]
            tally = [str(scores[truth, s] or "") for s in (RIGHT, CANNOT_TELL, WRONG)]
            body.append([truth, *counts, *tally])
    total = Counter(score(o.truth, o.verdict) for o in mine)
    lines = _markdown(head, body)
    lines.append(
        f"\n{allocator}: {total[RIGHT]}/{len(mine)} right, {total[CANNOT_TELL]} cannot tell, "
        f"{total[WRONG]} wrong" + (f", {total[NO_RESULT]} no result" if total[NO_RESULT] else "")
    )
    return "\n".join(lines)


def per_case(outcomes: Sequence[Outcome]) -> str:
    """One row per case and version: its truth, each allocator's verdict class and score, and
    how long each run took."""
    allocators = sorted({o.allocator for o in outcomes})
    keys = list(dict.fromkeys((o.case, o.version, o.truth) for o in outcomes))
    found = {(o.case, o.version, o.allocator): o for o in outcomes}
    head = ["case", "version", "truth", *allocators]
    body = []
    for case, version, truth in keys:
        row = [case, version, truth]
        for a in allocators:
            o = found.get((case, version, a))
            row.append(
                "-"
                if o is None
                else f"{cell(o.verdict)} ({score(truth, o.verdict)}, {o.seconds:.0f} s)"
            )
        body.append(row)
    return "\n".join(_markdown(head, body))
