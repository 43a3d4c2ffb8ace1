"""The race's decisions on synthetic figures with known answers: dropping, guardrails, stopping."""

from __future__ import annotations

import pytest

from sandbox.advise import rules
from sandbox.advise.budget import parse_budget, shown
from sandbox.config.values import Invalid

SPREAD = (0.99, 1.0, 1.01)


def arm(
    after_idle: float, rps: float = 100.0, p95: float = 200.0, n: int = 3
) -> dict[str, list[float]]:
    """`n` runs around the given figures (±1 %)."""
    k = SPREAD[:n] if n <= 3 else SPREAD * (n // 3)
    return {
        rules.HEADLINE: [after_idle * f for f in k],
        "peak_rss_mib": [after_idle * 1.5 * f for f in k],
        rules.THROUGHPUT: [rps * f for f in k],
        rules.P95: [p95 * f for f in k],
    }


def test_an_arm_clearly_above_the_best_is_dropped_and_one_within_noise_is_not() -> None:
    figures = {"glibc": arm(200), "jemalloc": arm(100), "mimalloc": arm(101), "tcmalloc": arm(150)}

    d = rules.decide(figures, list(figures), "glibc", rounds_done=3)

    assert d.best == "jemalloc"
    assert sorted(d.dropped) == ["glibc", "tcmalloc"]
    assert d.dropped["tcmalloc"].startswith("after-idle RSS 1.50 [")
    assert "x jemalloc (Holm p " in d.dropped["tcmalloc"]
    assert d.not_recommended == {}


def test_nothing_is_dropped_before_min_rounds() -> None:
    figures = {"glibc": arm(200, n=1), "jemalloc": arm(100, n=1)}

    d = rules.decide(figures, list(figures), "glibc", rounds_done=1, min_rounds=2)

    assert d.best == "jemalloc"
    assert d.dropped == {}


def test_holm_across_arms_keeps_arms_that_one_test_alone_would_drop() -> None:
    # Each arm about 4 % above the best, with noisy runs: alone, p is about 0.03 (dropped);
    # two such arms, Holm doubles the smaller p to about 0.06 (both kept).
    best = {rules.HEADLINE: [97.0, 101.0, 93.0, 99.0]}
    runs = [100.0, 104.0, 96.0, 102.0]
    a = {rules.HEADLINE: [v * 1.04 for v in runs]}
    a2 = {rules.HEADLINE: [v * 1.041 for v in runs]}

    alone = rules.decide({"best": best, "a": a}, ["best", "a"], "best", rounds_done=4)
    both = rules.decide({"best": best, "a": a, "a2": a2}, ["best", "a", "a2"], "best", 4)

    assert list(alone.dropped) == ["a"]
    assert both.best == "best"
    assert both.dropped == {}


def test_a_cheaper_arm_that_costs_throughput_is_not_recommended_and_cannot_win() -> None:
    figures = {
        "glibc": arm(200),
        "slow-but-small": arm(80, rps=80),  # 20 % less throughput
        "jemalloc": arm(100),
    }

    d = rules.decide(figures, list(figures), "glibc", rounds_done=2)

    assert d.best == "jemalloc"
    assert d.not_recommended["slow-but-small"].startswith("costs more than 5%: throughput 0.80 [")
    assert d.dropped["slow-but-small"].startswith("not recommended: costs more than 5%")


def test_a_p95_cost_within_tolerance_is_accepted_and_one_beyond_it_is_not() -> None:
    figures = {"glibc": arm(200), "a": arm(100, p95=208), "b": arm(110, p95=240)}

    d = rules.decide(figures, list(figures), "glibc", rounds_done=2, tolerance=0.05)

    assert "a" not in d.not_recommended
    assert d.not_recommended["b"].startswith("costs more than 5%: p95 1.20 [")


def test_when_every_arm_is_marked_the_best_is_still_named() -> None:
    figures = {"glibc": arm(200), "a": arm(100, rps=50)}

    assert rules.best_arm(figures, ["a"], {"a": "slow"}) == "a"


def test_an_arm_without_runs_is_dropped_after_min_rounds() -> None:
    figures = {"glibc": arm(200), "jemalloc": arm(100)}

    d = rules.decide(figures, ["glibc", "jemalloc", "broken"], "glibc", rounds_done=2)

    assert d.dropped["broken"] == "no run finished ok in 2 rounds"


def test_stop_when_separated() -> None:
    assert rules.separated(["glibc", "a", "b"], "a", ["glibc", "b"])
    assert not rules.separated(["glibc", "a", "b"], "a", ["glibc"])
    why = rules.stop_reason(
        is_separated=True, best="a", elapsed_s=10, budget_s=100, estimate_s=5, rounds_done=2
    )
    assert why == "a is separated from every other arm"


def test_stop_before_a_round_that_would_overrun_the_budget() -> None:
    estimate = rules.next_round_s([30.0, 50.0], arms=3)
    assert estimate == 120.0

    go_on = rules.stop_reason(
        is_separated=False, best="a", elapsed_s=1000, budget_s=1200, estimate_s=120, rounds_done=3
    )
    stop = rules.stop_reason(
        is_separated=False, best="a", elapsed_s=1100, budget_s=1200, estimate_s=120, rounds_done=3
    )

    assert go_on is None
    assert stop == "the next round (about 120 s) would overrun the budget (1100 of 1200 s used)"


def test_stop_at_max_rounds() -> None:
    why = rules.stop_reason(
        is_separated=False, best="a", elapsed_s=0, budget_s=1e6, estimate_s=1, rounds_done=5,
        max_rounds=5,
    )  # fmt: skip
    assert why == "5 rounds run (--max-rounds)"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("20m", 1200.0),
        ("90s", 90.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("45", 45.0),
        ("1.5m", 90.0),
    ],
)
def test_budget_parsing(text: str, seconds: float) -> None:
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "20x", "m20", "0s", "20m1h", "1m1m", "-5m"])
def test_bad_budgets_say_what_is_expected(text: str) -> None:
    with pytest.raises(Invalid, match="a duration such as 20m, 90s, 1h or 1h30m"):
        parse_budget(text)


def test_budget_shown_as_typed() -> None:
    assert [shown(s) for s in (1200, 90, 5400, 45)] == ["20m", "1m30s", "1h30m", "45s"]


def test_without_an_interval_nothing_is_marked() -> None:
    # One run a side, or p95s that agree exactly (Locust's histogram steps): no evidence.
    one = {"glibc": arm(200, n=1), "a": arm(100, rps=50, n=1)}
    assert rules.guardrail(one, "a", "glibc", 0.05) is None
    flat = {
        "glibc": {rules.P95: [1100.0, 1100.0]},
        "a": {rules.P95: [1200.0, 1200.0]},
    }
    assert rules.guardrail(flat, "a", "glibc", 0.05) is None
