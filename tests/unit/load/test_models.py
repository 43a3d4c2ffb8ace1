from __future__ import annotations

import pytest

from sandbox.load.models import LoadModel

RATE = LoadModel("rate", users=16, rate=30.0, duration_s=8.0)
RAMP = LoadModel("ramp", users=16, rate=10.0, to_rate=50.0, duration_s=8.0)
SPIKE = LoadModel(
    "spike", users=16, rate=10.0, duration_s=12.0, spike_x=4.0, spike_at_s=4.0, spike_s=4.0
)
SOAK = LoadModel("soak", users=8, duration_s=30.0)
ITERATIONS = LoadModel("iterations", users=16)


def test_iterations_has_no_rate_and_never_ends() -> None:
    assert not ITERATIONS.paced
    assert ITERATIONS.pace() == 0.0
    assert [ITERATIONS.rate_at(t) for t in (0.0, 1e6)] == [0.0, 0.0]
    assert ITERATIONS.users_at(1e6, pace=0.0) == 16
    assert ITERATIONS.problems() == []


def test_rate_is_constant_until_the_duration() -> None:
    assert RATE.paced
    assert [RATE.rate_at(t) for t in (0.0, 4.0, 7.999)] == [30.0, 30.0, 30.0]
    assert RATE.rate_at(8.0) is None
    assert RATE.rate_at(9.0) is None


def test_rate_pace_spreads_the_rate_over_every_user() -> None:
    assert RATE.pace() == 30.0 / 16
    assert RATE.users_at(0.0, RATE.pace()) == 16
    assert RATE.users_at(8.0, RATE.pace()) is None


def test_ramp_is_linear_from_rate_to_to_rate() -> None:
    assert RAMP.rate_at(0.0) == 10.0
    assert RAMP.rate_at(4.0) == 30.0
    assert RAMP.rate_at(6.0) == 40.0
    assert RAMP.rate_at(8.0) is None
    assert RAMP.peak_rate == 50.0


def test_ramp_pace_puts_the_peak_on_every_user() -> None:
    pace = RAMP.pace()
    assert pace == 50.0 / 16
    assert RAMP.users_at(4.0, pace) == round(30.0 / pace)
    assert RAMP.users_at(7.999, pace) == 16
    assert RAMP.users_at(8.0, pace) is None


def test_downward_ramp_peaks_at_its_start() -> None:
    down = LoadModel("ramp", users=10, rate=40.0, to_rate=20.0, duration_s=10.0)
    assert down.peak_rate == 40.0
    assert down.pace() == 4.0
    assert down.rate_at(5.0) == 30.0


def test_spike_window_is_start_inclusive_end_exclusive() -> None:
    assert SPIKE.rate_at(3.999) == 10.0
    assert SPIKE.rate_at(4.0) == 40.0
    assert SPIKE.rate_at(7.999) == 40.0
    assert SPIKE.rate_at(8.0) == 10.0
    assert SPIKE.rate_at(12.0) is None
    assert SPIKE.peak_rate == 40.0


def test_spike_pace_gives_whole_baseline_and_burst_users() -> None:
    # 16 users, x4: the baseline on 4 users, the burst on all 16.
    pace = SPIKE.pace()
    assert pace == 10.0 / 4
    assert SPIKE.users_at(0.0, pace) == 4
    assert SPIKE.users_at(4.0, pace) == 16
    # 16 users, x5: floor(16 / 5) = 3 baseline users, 15 in the burst; both rates exact.
    x5 = LoadModel(
        "spike", users=16, rate=9.0, duration_s=12.0, spike_x=5.0, spike_at_s=4.0, spike_s=4.0
    )
    assert x5.pace() == 3.0
    assert x5.users_at(0.0, x5.pace()) == 3
    assert x5.users_at(5.0, x5.pace()) == 15
    assert 3 * x5.pace() == x5.rate
    assert 15 * x5.pace() == x5.rate * x5.spike_x


def test_spike_needs_at_least_spike_x_users() -> None:
    few = LoadModel(
        "spike", users=3, rate=2.0, duration_s=10.0, spike_x=5.0, spike_at_s=1.0, spike_s=1.0
    )
    assert few.problems() == [
        "users: the spike model needs at least spike_x (5) users, one for the baseline and "
        "spike_x for the burst"
    ]


def test_soak_runs_unpaced_until_the_duration() -> None:
    assert not SOAK.paced
    assert SOAK.pace() == 0.0
    assert SOAK.rate_at(0.0) == 0.0
    assert SOAK.rate_at(29.9) == 0.0
    assert SOAK.rate_at(30.0) is None
    assert SOAK.users_at(10.0, pace=0.0) == 8
    assert SOAK.users_at(30.0, pace=0.0) is None


def test_users_at_without_a_pace_falls_back_to_users() -> None:
    assert RATE.users_at(1.0, pace=0.0) == 16


def test_users_at_never_drops_below_one_user() -> None:
    from_zero = LoadModel("ramp", users=10, rate=0.0, to_rate=10.0, duration_s=10.0)
    assert from_zero.problems() == []
    assert from_zero.users_at(0.0, from_zero.pace()) == 1


def test_valid_models_have_no_problems() -> None:
    assert [m.problems() for m in (RATE, RAMP, SPIKE, SOAK, ITERATIONS)] == [[]] * 5


def test_problems_missing_duration_and_rate() -> None:
    assert LoadModel("rate").problems() == [
        "duration_s: the rate model needs a duration > 0",
        "rate: the rate model needs a rate > 0 (requests/s)",
    ]
    assert LoadModel("soak").problems() == ["duration_s: the soak model needs a duration > 0"]


def test_problems_ramp_needs_to_rate() -> None:
    assert LoadModel("ramp", rate=10.0, duration_s=5.0).problems() == [
        "to_rate: the ramp model needs the rate to end at (> 0)"
    ]
    assert LoadModel("ramp", duration_s=5.0).problems() == [
        "rate: the ramp model needs a rate > 0 (requests/s)",
        "to_rate: the ramp model needs the rate to end at (> 0)",
    ]


def test_problems_spike_x_at_most_one() -> None:
    for x in (1.0, 0.5):
        model = LoadModel(
            "spike", rate=10.0, duration_s=12.0, spike_x=x, spike_at_s=4.0, spike_s=4.0
        )
        assert model.problems() == ["spike_x: the burst must be more than 1 times the baseline"]


def test_problems_burst_past_the_duration() -> None:
    late = LoadModel("spike", rate=10.0, duration_s=12.0, spike_at_s=10.0, spike_s=4.0)
    assert late.problems() == ["spike_at_s: the burst must end within duration_s"]
    at_the_end = LoadModel("spike", rate=10.0, duration_s=12.0, spike_at_s=8.0, spike_s=4.0)
    assert at_the_end.problems() == []


def test_problems_spike_without_length() -> None:
    model = LoadModel("spike", rate=10.0, duration_s=12.0, spike_at_s=4.0, spike_s=0.0)
    assert model.problems() == ["spike_s: the burst needs a length > 0"]


@pytest.mark.parametrize("model", [RATE, RAMP, SPIKE], ids=["rate", "ramp", "spike"])
def test_expected_requests_integrates_the_rate(model: LoadModel) -> None:
    # rate: 30 x 8 s; ramp: (10 + 50) / 2 x 8 s; spike: 10 x 8 s + 40 x 4 s.
    assert model.expected_requests(0.0, model.duration_s) == pytest.approx(240.0)


def test_expected_requests_stops_at_the_duration_and_covers_parts() -> None:
    assert RATE.expected_requests(0.0, 20.0) == pytest.approx(240.0)
    assert RATE.expected_requests(2.0, 3.0) == pytest.approx(30.0)
    assert SPIKE.expected_requests(4.0, 8.0) == pytest.approx(160.0)
    assert SOAK.expected_requests(0.0, 30.0) == 0.0
    assert RATE.expected_requests(5.0, 5.0) == 0.0


def test_describe() -> None:
    assert ITERATIONS.describe() == "iterations (16 users)"
    assert SOAK.describe() == "soak (8 users, 30 s)"
    assert RATE.describe() == "rate 30/s for 8 s"
    assert RAMP.describe() == "ramp 10→50/s over 8 s"
    assert SPIKE.describe() == "spike 10/s, ×4 for 4 s at 4 s, 12 s"
    assert LoadModel("rate", rate=2.5, duration_s=0.5).describe() == "rate 2.5/s for 0.5 s"


def test_each_model_reads_named_fields_of_its_own() -> None:
    from dataclasses import fields

    from sandbox.load.models import MODELS, PARAMETERS

    names = {f.name for f in fields(LoadModel)}
    assert set(PARAMETERS) == set(MODELS)
    assert all(set(p) <= names for p in PARAMETERS.values())
    spike = LoadModel(name="spike", rate=4.0, duration_s=30.0, spike_s=5.0)
    assert spike.parameters() == {
        "rate": 4.0,
        "duration_s": 30.0,
        "spike_x": 5.0,
        "spike_at_s": 0.0,
        "spike_s": 5.0,
    }
    assert LoadModel().parameters() == {}
