"""The stopping rule of --until-verdict on synthetic values: stops when separated, goes on when
not, stops at the cap, stops on equivalence; and keeps the A/A false-alarm rate at 5 %."""

from __future__ import annotations

import math
import random

import pytest

from sandbox.analysis import stats
from sandbox.analysis.sequential import Decision, Design, Look, classify, look, run_sequence

DESIGN = Design(min_repeats=3, max_repeats=8, min_effect=0.05)
REFS = {"jemalloc": "glibc"}


def spread(level: float, rel: float, n: int = 8, seed: int = 1) -> list[float]:
    """n values around `level` with a relative spread `rel` (lognormal)."""
    rng = random.Random(seed)
    return [level * math.exp(rel * rng.gauss(0.0, 1.0)) for _ in range(n)]


def test_the_design_spends_alpha_over_its_looks() -> None:
    assert DESIGN.looks == 6
    levels = [DESIGN.level(n) for n in range(3, 9)]
    assert levels == pytest.approx([0.025] + [0.005] * 5)
    assert sum(levels) == pytest.approx(0.05)
    assert DESIGN.confidence(3) == pytest.approx(0.975)
    assert Design(min_repeats=3, max_repeats=3).level(3) == 0.05  # one look spends it all
    even = Design(max_repeats=4, first_share=0.5)
    assert [even.level(3), even.level(4)] == pytest.approx([0.025, 0.025])
    assert DESIGN.bounds == pytest.approx((1 / 1.05, 1.05))
    assert [DESIGN.is_look(n) for n in (2, 3, 8, 9)] == [False, True, True, False]
    assert Design.from_dict(DESIGN.to_dict()) == DESIGN


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_repeats": 1}, "min_repeats is 1; an interval needs >= 2 runs"),
        ({"max_repeats": 2}, "max_repeats 2 is below min_repeats 3"),
        ({"min_effect": 0.0}, "min_effect is 0.0; expected > 0, e.g. 0.05"),
        ({"alpha": 1.5}, "alpha is 1.5; expected between 0 and 1"),
        ({"first_share": 1.0}, "first_share is 1.0; expected between 0 and 1"),
    ],
)
def test_a_design_that_cannot_work_is_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError) as err:
        Design(**kwargs)  # type: ignore[arg-type]
    assert str(err.value) == message


def ratio(low: float | None, high: float | None) -> stats.Ratio:
    return stats.Ratio("m", 1.0, low, high, 0.5, 4, 4)


@pytest.mark.parametrize(
    ("low", "high", "outcome"),
    [
        (1.01, 1.20, "differs"),
        (0.70, 0.99, "differs"),
        (0.97, 1.04, "equivalent"),
        (1 / 1.05, 1.05, "equivalent"),
        (0.94, 1.04, "undecided"),
        (0.97, 1.06, "undecided"),
        (None, None, "undecided"),
    ],
)
def test_classify_reads_the_interval(low: float | None, high: float | None, outcome: str) -> None:
    assert classify(ratio(low, high), DESIGN) == outcome


def test_it_stops_at_the_first_look_when_the_arms_are_separated() -> None:
    values = {"glibc": spread(200, 0.03), "jemalloc": spread(150, 0.03, seed=2)}
    seen = run_sequence(values, REFS, DESIGN)
    assert (seen.rounds, seen.reason, seen.differs) == (3, "decided", ("jemalloc",))
    r = seen.decisions[0].ratio
    assert r.n == r.n_baseline == 3
    # the look's interval is wider than the 95 % one, at 97.5 %
    plain = stats.log_ratio(values["jemalloc"][:3], values["glibc"][:3])
    assert r.ci_low is not None and plain.ci_low is not None and r.ci_low < plain.ci_low


def test_it_goes_on_while_the_interval_holds_1_and_stops_at_the_cap() -> None:
    values = {"glibc": spread(200, 0.10), "jemalloc": spread(200, 0.10, seed=2)}
    early = look({k: v[:3] for k, v in values.items()}, REFS, 3, DESIGN)
    assert (early.stop, early.reason) == (False, "continue")
    seen = run_sequence(values, REFS, DESIGN)
    assert (seen.rounds, seen.reason, seen.differs) == (8, "cap", ())
    assert seen.decisions[0].outcome == "undecided"


def test_it_stops_when_the_difference_is_clearly_below_the_minimum_effect() -> None:
    values = {"glibc": spread(200, 0.005), "jemalloc": spread(201, 0.005, seed=2)}
    seen = run_sequence(values, REFS, DESIGN)
    assert (seen.rounds, seen.reason) == (3, "decided")
    assert seen.decisions[0].outcome == "equivalent"
    wider = Design(min_effect=0.001)  # the same runs cannot show a 0.1 % bound
    assert run_sequence(values, REFS, wider).reason == "cap"


def test_every_comparison_must_be_decided_before_it_stops() -> None:
    values = {
        "glibc": spread(200, 0.02),
        "jemalloc": spread(140, 0.02, seed=2),
        "mimalloc": spread(200, 0.15, seed=3),
    }
    refs = {"jemalloc": "glibc", "mimalloc": "glibc"}
    seen = look({k: v[:3] for k, v in values.items()}, refs, 3, DESIGN)
    assert [d.outcome for d in seen.decisions] == ["differs", "undecided"]
    assert seen.reason == "continue"


def test_an_arm_without_values_or_spread_stays_undecided() -> None:
    seen = look({"glibc": [200.0, 200.0, 200.0], "jemalloc": [150.0] * 3}, REFS, 3, DESIGN)
    assert seen.decisions[0].outcome == "undecided"
    gone = look({"glibc": [200.0, 201.0, 199.0]}, REFS, 3, DESIGN)
    assert gone.decisions[0].ratio.note == "no values"
    assert gone.reason == "continue"


def test_no_look_outside_the_planned_rounds() -> None:
    with pytest.raises(ValueError) as err:
        look({}, REFS, 2, DESIGN)
    assert str(err.value) == "no look after 2 rounds: the design looks after 3 to 8"
    with pytest.raises(ValueError) as err:
        DESIGN.level(9)
    assert str(err.value) == "no look after 9 rounds: the design looks after 3 to 8"


def test_a_look_says_what_it_saw_and_why() -> None:
    r = stats.Ratio("m", 0.82, 0.74, 0.91, 0.001, 4, 4)
    seen = Look(4, (Decision("jemalloc", "glibc", r, "differs"),), "decided")
    assert seen.lines(DESIGN) == [
        "look 2 of 6 after 4 repeats (99.5% intervals): every comparison decided; stop",
        "  jemalloc / glibc 0.820 [0.740, 0.910]: excludes 1.00 -> differs",
    ]
    going = Look(4, seen.decisions, "continue")
    assert going.summary(DESIGN) == (
        "look 2 of 6 after 4 repeats (99.5% intervals): not decided yet; one more round "
        "(up to 4 more)"
    )
    in_slots = DESIGN.for_slots(2)  # looks after 4, 6, 8
    assert Look(6, seen.decisions, "continue").summary(in_slots) == (
        "look 2 of 3 after 6 repeats (98.8% intervals): not decided yet; 2 more rounds "
        "(up to 2 more)"
    )
    undecided = stats.Ratio("m", 0.98, 0.90, 1.07, 0.5, 4, 4)
    capped = Look(8, (Decision("jemalloc", "glibc", undecided, "undecided"),), "cap")
    assert capped.lines(DESIGN) == [
        "look 6 of 6 after 8 repeats (99.5% intervals): the cap of 8 repeats; stop, 1 undecided",
        "  jemalloc / glibc 0.980 [0.900, 1.070]: holds 1.00 and reaches beyond [0.952, 1.050] "
        "-> undecided",
    ]


def aa_rate(design: Design, sequences: int, seed: int) -> float:
    """Fraction of A/A sequences (one lognormal population, 5 % spread) that claim a
    difference at some look."""
    rng = random.Random(seed)
    claims = 0
    for _ in range(sequences):
        values = {
            arm: [math.exp(0.05 * rng.gauss(0.0, 1.0)) for _ in range(design.max_repeats)]
            for arm in ("glibc", "jemalloc")
        }
        claims += bool(run_sequence(values, REFS, design).differs)
    return claims / sequences


def test_the_rule_keeps_aa_false_alarms_at_5_percent_where_naive_looks_do_not() -> None:
    assert aa_rate(DESIGN, 600, seed=3) <= 0.05
    # every look at 95 % (alpha spent 6 times over): the optional stopping the rule prevents
    naive = Design(min_repeats=3, max_repeats=8, alpha=0.05 * 6, first_share=1 / 6)
    assert [naive.level(n) for n in range(3, 9)] == pytest.approx([0.05] * 6)
    assert aa_rate(naive, 600, seed=3) > 0.07


@pytest.mark.parametrize(
    ("per_slot", "first", "cap", "levels"),
    [
        (1, 3, 8, None),
        (2, 4, 8, (0.025, 0.0125, 0.0125)),
        (3, 3, 6, (0.025, 0.025)),
        (4, 4, 8, (0.025, 0.025)),
    ],
)
def test_slots_of_rounds_get_a_look_at_each_slot_end_and_the_same_alpha(
    per_slot: int, first: int, cap: int, levels: tuple[float, ...] | None
) -> None:
    design = Design(max_repeats=8).for_slots(per_slot)
    assert (design.min_repeats, design.max_repeats) == (first, cap)
    looks = [r for r in range(1, 9) if design.is_look(r)]
    assert looks == list(range(first, cap + 1, per_slot))
    spent = [design.level(r) for r in looks]
    assert sum(spent) == pytest.approx(design.alpha)
    if levels is not None:
        assert spent == pytest.approx(list(levels))
    assert Design.from_dict(design.to_dict()) == design


def test_looks_that_miss_the_cap_are_refused() -> None:
    with pytest.raises(ValueError, match="look_every is 2; expected >= 1 and a divisor of"):
        Design(min_repeats=3, max_repeats=6, look_every=2)
