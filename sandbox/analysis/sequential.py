"""The sequential stopping rule: add repeats until the headline answer is clear, or the cap.

A group-sequential design with a fixed maximum. Every round adds one run of every arm; from
`min_repeats` rounds on, each round is a *look*: every comparison (a group against its
reference) gets the ratio of geometric means with a Welch t interval on the log values
(`stats.log_ratio`), at the look's level, and is

- `differs` when the interval excludes 1.0;
- `equivalent` when it lies inside [1/(1+m), 1+m] for the minimum effect m (whatever the
  difference is, it is smaller than the effect worth finding);
- `undecided` otherwise (also when there is no interval: too few runs, or no spread).

The experiment stops at the first look where every comparison is decided, or at the cap
(`max_repeats`). Looking after every round and stopping at the first interval that excludes 1.0
would, with the usual 95 % interval at each look, claim a difference between an allocator and
itself far more often than 5 %: each look is one more chance. So every look gets a share of
`alpha` and the shares add up to `alpha` (Bonferroni over the planned looks, unequal shares
allowed): the chance that *some* look of an A/A experiment excludes 1.0 is at most the sum of
the per-look levels, `alpha`, however correlated the looks are. The first look spends
`first_share` of it (half, by default), the others split the rest equally: a large difference is
found at the first look (3 repeats) about as often as with a fixed 3-repeat experiment at 2.5 %,
and a small one still gets five more looks. It is conservative (a Pocock boundary, which spends
the same `alpha` more exactly, would stop a little sooner), but it needs no assumption beyond
the validity of each look's own test. benchmarks/false_alarms.py measures the rate under the
rule, on simulated and on resampled real A/A runs (docs/evidence.md, section 4).

Pure numbers: the functions take each arm's values, not runs, so that any caller with
repeated measurements of arms (an experiment, `sandbox advise`'s race) can reuse them:

    design = Design(min_repeats=3, max_repeats=8, min_effect=0.05)  # first_share=0.5
    seen = look({"glibc": [...], "jemalloc": [...]}, {"jemalloc": "glibc"}, rounds=4,
                design=design)
    if seen.stop: ...   # seen.reason says why; seen.lines() in words
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from sandbox.analysis.stats import ALPHA, Ratio, log_ratio

MIN_REPEATS = 3
"""Repeats of every arm before the first look: an interval from 2 runs a side is too wide to
decide anything (docs/evidence.md, section 3)."""
MAX_REPEATS = 8
"""The default cap."""
MIN_EFFECT = 0.05
"""The default minimum effect: a ratio within [1/1.05, 1.05] is too small to matter."""
FIRST_SHARE = 0.5
"""The share of alpha the first look spends, by default."""

Outcome = Literal["differs", "equivalent", "undecided"]
Reason = Literal["decided", "cap", "continue"]


@dataclass(frozen=True)
class Design:
    """The planned looks and what each one decides."""

    min_repeats: int = MIN_REPEATS
    max_repeats: int = MAX_REPEATS
    min_effect: float = MIN_EFFECT
    """m: a ratio inside [1/(1+m), 1+m] is too small to matter."""
    alpha: float = ALPHA
    """The false-alarm rate the whole sequence keeps, per comparison."""
    first_share: float = FIRST_SHARE
    """The share of `alpha` the first look spends (all of it when it is the only look)."""
    look_every: int = 1
    """Rounds between looks: runs side by side finish several rounds at once, and a look in the
    middle of them would spend alpha on a stop that saves no time (`for_slots`)."""

    def __post_init__(self) -> None:
        if self.min_repeats < 2:
            raise ValueError(f"min_repeats is {self.min_repeats}; an interval needs >= 2 runs")
        if self.max_repeats < self.min_repeats:
            raise ValueError(
                f"max_repeats {self.max_repeats} is below min_repeats {self.min_repeats}"
            )
        if self.min_effect <= 0:
            raise ValueError(f"min_effect is {self.min_effect}; expected > 0, e.g. 0.05")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha is {self.alpha}; expected between 0 and 1")
        if not 0 < self.first_share < 1:
            raise ValueError(f"first_share is {self.first_share}; expected between 0 and 1")
        if self.look_every < 1 or (self.max_repeats - self.min_repeats) % self.look_every:
            raise ValueError(
                f"look_every is {self.look_every}; expected >= 1 and a divisor of "
                f"max_repeats - min_repeats ({self.max_repeats - self.min_repeats})"
            )

    def for_slots(self, rounds_per_slot: int) -> Design:
        """The design for runs that finish `rounds_per_slot` rounds at a time: a look at the end
        of each slot only, the first at the first slot that reaches `min_repeats`, the cap
        lowered to the last slot end within it (never below that first look)."""
        if rounds_per_slot <= 1:
            return self
        first = -(-self.min_repeats // rounds_per_slot) * rounds_per_slot
        last = max(first, first + (self.max_repeats - first) // rounds_per_slot * rounds_per_slot)
        return replace(self, min_repeats=first, max_repeats=last, look_every=rounds_per_slot)

    @property
    def looks(self) -> int:
        """How many looks the design plans: one every `look_every` rounds from min_repeats to
        max_repeats."""
        return (self.max_repeats - self.min_repeats) // self.look_every + 1

    def level(self, rounds: int) -> float:
        """The two-sided level of the look after `rounds` rounds: `first_share` of alpha at
        the first, the rest split equally among the others; they add up to alpha."""
        if not self.is_look(rounds):
            raise ValueError(
                f"no look after {rounds} rounds: the design looks after {self.min_repeats} to "
                f"{self.max_repeats}"
            )
        if self.looks == 1:
            return self.alpha
        if rounds == self.min_repeats:
            return self.alpha * self.first_share
        return self.alpha * (1.0 - self.first_share) / (self.looks - 1)

    def confidence(self, rounds: int) -> float:
        """The interval of that look: 1 - its level (97.5 % at the first look, 99.5 % at
        each of the 5 others, by default)."""
        return 1.0 - self.level(rounds)

    @property
    def bounds(self) -> tuple[float, float]:
        """The equivalence range [1/(1+m), 1+m]."""
        return 1.0 / (1.0 + self.min_effect), 1.0 + self.min_effect

    def describe(self, runs_per_round: int) -> str:
        """The plan in one line, for the start of an experiment."""
        later = (
            f", then {self.confidence(self.min_repeats + self.look_every):.1%} at each of the "
            f"{self.looks - 1} others"
            if self.looks > 1
            else ""
        )
        low, high = self.bounds
        first = self.confidence(self.min_repeats)
        every = "every round" if self.look_every == 1 else f"every {self.look_every} rounds"
        return (
            f"until a verdict: up to {self.max_repeats} repeats "
            f"({self.max_repeats * runs_per_round} runs); a look after {every} from "
            f"{self.min_repeats} repeats on, its interval at {first:.1%}{later}; it stops once "
            "every comparison's interval excludes 1.00 or lies inside "
            f"[{low:.3f}, {high:.3f}]"
        )

    def is_look(self, rounds: int) -> bool:
        """Whether the design looks after this many complete rounds."""
        return (
            self.min_repeats <= rounds <= self.max_repeats
            and (rounds - self.min_repeats) % self.look_every == 0
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_repeats": self.min_repeats,
            "max_repeats": self.max_repeats,
            "min_effect": self.min_effect,
            "alpha": self.alpha,
            "first_share": self.first_share,
            "rule": "bonferroni",
            **({"look_every": self.look_every} if self.look_every != 1 else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Design:
        return cls(
            min_repeats=int(data["min_repeats"]),
            max_repeats=int(data["max_repeats"]),
            min_effect=float(data["min_effect"]),
            alpha=float(data["alpha"]),
            first_share=float(data["first_share"]),
            look_every=int(data.get("look_every", 1)),
        )


def classify(ratio: Ratio, design: Design) -> Outcome:
    """One comparison's interval (at `design.confidence`) as the rule reads it."""
    if ratio.ci_low is None or ratio.ci_high is None:
        return "undecided"
    if ratio.ci_low > 1.0 or ratio.ci_high < 1.0:
        return "differs"
    low, high = design.bounds
    if low <= ratio.ci_low and ratio.ci_high <= high:
        return "equivalent"
    return "undecided"


@dataclass(frozen=True)
class Decision:
    """One comparison at one look."""

    group: str
    reference: str
    ratio: Ratio
    """At the look's confidence (`Design.confidence`), not 95 %."""
    outcome: Outcome

    def line(self, design: Design) -> str:
        """`jemalloc / glibc 0.82 [0.74, 0.91]: excludes 1.00 -> differs`."""
        r = self.ratio
        name = f"{self.group} / {self.reference}"
        if r.ratio is None:
            return f"{name}: no ratio ({r.note}) -> undecided"
        if r.ci_low is None or r.ci_high is None:
            return f"{name} {r.ratio:.3f}, no interval ({r.note}) -> undecided"
        shown = f"{name} {r.ratio:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
        low, high = design.bounds
        why = {
            "differs": "excludes 1.00",
            "equivalent": f"inside [{low:.3f}, {high:.3f}]",
            "undecided": f"holds 1.00 and reaches beyond [{low:.3f}, {high:.3f}]",
        }[self.outcome]
        return f"{shown}: {why} -> {self.outcome}"


@dataclass(frozen=True)
class Look:
    """What the rule saw after `rounds` complete rounds, and whether it stops."""

    rounds: int
    decisions: tuple[Decision, ...]
    reason: Reason
    """`decided`: every comparison differs or is equivalent; `cap`: the last planned look;
    `continue`: another round."""

    @property
    def stop(self) -> bool:
        return self.reason != "continue"

    @property
    def differs(self) -> tuple[str, ...]:
        """The groups this look found different from their reference."""
        return tuple(d.group for d in self.decisions if d.outcome == "differs")

    def summary(self, design: Design) -> str:
        """One line: the look, and why the experiment goes on or stops."""
        number = (self.rounds - design.min_repeats) // design.look_every + 1
        head = (
            f"look {number} of {design.looks} after {self.rounds} repeats "
            f"({design.confidence(self.rounds):.1%} intervals)"
        )
        if self.reason == "decided":
            return f"{head}: every comparison decided; stop"
        if self.reason == "cap":
            open_ = sum(d.outcome == "undecided" for d in self.decisions)
            return f"{head}: the cap of {design.max_repeats} repeats; stop, {open_} undecided"
        left = design.max_repeats - self.rounds
        more = "one more round" if design.look_every == 1 else f"{design.look_every} more rounds"
        return f"{head}: not decided yet; {more} (up to {left} more)"

    def lines(self, design: Design) -> list[str]:
        """The summary, then each comparison's interval and outcome."""
        return [self.summary(design), *(f"  {d.line(design)}" for d in self.decisions)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "reason": self.reason,
            "comparisons": [
                {
                    "group": d.group,
                    "reference": d.reference,
                    "ratio": d.ratio.ratio,
                    "ci_low": d.ratio.ci_low,
                    "ci_high": d.ratio.ci_high,
                    "p_value": d.ratio.p_value,
                    "n": d.ratio.n,
                    "n_reference": d.ratio.n_baseline,
                    "outcome": d.outcome,
                }
                for d in self.decisions
            ],
        }


def look(
    values: Mapping[str, Sequence[float]],
    references: Mapping[str, str],
    rounds: int,
    design: Design,
    metric: str = "",
) -> Look:
    """The look after `rounds` complete rounds: each group of `references` (group -> the group
    it is compared with) against its reference, on each arm's values so far (`values`: arm ->
    its measurements; a missing arm has none).

    With no comparison at all there is nothing to decide, so it stops as `decided`."""
    confidence = design.confidence(rounds)  # ValueError when the design has no such look
    decisions = []
    for group, reference in references.items():
        r = log_ratio(values.get(group, ()), values.get(reference, ()), metric, confidence)
        decisions.append(Decision(group, reference, r, classify(r, design)))
    if all(d.outcome != "undecided" for d in decisions):
        reason: Reason = "decided"
    elif rounds >= design.max_repeats:
        reason = "cap"
    else:
        reason = "continue"
    return Look(rounds, tuple(decisions), reason)


def run_sequence(
    values: Mapping[str, Sequence[float]], references: Mapping[str, str], design: Design
) -> Look:
    """The rule played over arms measured up to the cap in round order (`values[arm][i]` is
    round i's): the look where it stops. For simulations; an experiment looks as it goes."""
    for rounds in range(design.min_repeats, design.max_repeats + 1, design.look_every):
        seen = look({k: v[:rounds] for k, v in values.items()}, references, rounds, design)
        if seen.stop:
            return seen
    raise AssertionError("the last look always stops")
