"""The growth curves and the choice between them, on synthetic series whose truth is known."""

from __future__ import annotations

import math
import random

import pytest

from sandbox.analysis import growth
from sandbox.units import MIB
from tests.unit.analysis.synthetic import PER_BATCH, run_of


def test_each_curve_fits_the_series_it_describes_exactly() -> None:
    leak = run_of([9.0] * 6)
    line = growth.fit([leak], "linear", PER_BATCH)
    assert line is not None and line.params[1] == pytest.approx(9 * MIB)
    level = 40 + 30 / (1 - 0.5)  # 30 MiB, then half of the batch before, forever
    settling = run_of([30 * 0.5**k for k in range(6)])
    curve = growth.fit([settling], "saturating", PER_BATCH)
    assert curve is not None and curve.level_bytes is not None
    assert curve.level_bytes / MIB == pytest.approx(level, abs=0.5)
    assert curve.residual_bytes / MIB < 0.1


def test_a_noisy_leak_is_a_straight_line() -> None:
    rng = random.Random(1)
    runs = [run_of([20.0] + [9 + rng.gauss(0, 0.6) for _ in range(7)]) for _ in range(2)]
    choice = growth.choose(runs)
    assert choice is not None and choice.scored
    assert choice.chosen == "linear"


def test_geometrically_shrinking_batches_are_a_saturating_curve() -> None:
    rng = random.Random(2)
    added = [40 * 0.45**k + rng.gauss(0, 0.2) for k in range(8)]
    choice = growth.choose([run_of(added)])
    assert choice is not None and choice.chosen == "saturating"
    assert choice.score("saturating") < choice.score("linear") / 3


def test_a_log_creep_is_the_log_curve() -> None:
    creep = run_of([25 * (math.log1p(k) - math.log1p(k - 1)) for k in range(1, 12)])
    choice = growth.choose([creep])
    assert choice is not None and choice.chosen == "sublinear"


def test_two_batch_ends_are_not_scored_and_one_is_not_read() -> None:
    two = growth.choose([run_of([15.9, 0.0])])
    assert two is not None and not two.scored and two.chosen == "linear"
    assert set(two.curves) == {"linear", "saturating", "sublinear"}
    assert growth.choose([run_of([15.9])]) is None


def test_held_out_errors_come_from_every_origin_and_every_run() -> None:
    runs = [run_of([10.0, 5.0, 2.5, 1.25, 0.6]), run_of([11.0, 5.0, 2.5, 1.0, 0.5])]
    errors = growth.held_out_errors(runs, "linear", PER_BATCH)
    assert errors.origins == 3  # m = 2, 3, 4 of 5 ends
    assert len(errors.bytes) == 2 * (3 + 2 + 1)
    assert min(errors.ahead) == PER_BATCH and max(errors.ahead) == 3 * PER_BATCH
    # a straight line through shrinking steps overshoots every later end
    assert all(e < 0 for e in errors.bytes)
