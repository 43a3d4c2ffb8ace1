"""The result's load section: the load spec, its model and the schedule as one flat mapping (format
3's keys), and how older files read."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.load.models import LoadModel
from sandbox.load.spec import LoadSpec, Schedule
from sandbox.results.conditions import LoadInfo
from sandbox.results.shapes import Mismatch, from_plain, to_plain

RATE = LoadSpec(
    locustfile=Path("/repo/plans/locustfile.py"),
    tags=("tiny", "small"),
    spawn_rate=8.0,
    iterations=100,
    model=LoadModel("rate", users=8, rate=20.0, duration_s=30.0),
    workers=2,
    drill=True,
    timeout_s=120.0,
)
SCHEDULE = Schedule(batches=3, pause_s=5.0, baseline_s=3.0, idle_s=15.0)
SPIKE = LoadModel(
    "spike", users=16, rate=10.0, duration_s=12.0, spike_x=4.0, spike_at_s=4.0, spike_s=4.0
)


def test_the_record_keeps_format_3s_keys_and_leaves_out_what_only_drives_locust() -> None:
    assert to_plain(LoadInfo(RATE, SCHEDULE, [])) == {
        "locustfile": "/repo/plans/locustfile.py",
        "tags": ["tiny", "small"],
        "users": 8,
        "spawn_rate": 8.0,
        "iterations": 100,
        "batches": 3,
        "pause_s": 5.0,
        "baseline_s": 3.0,
        "idle_s": 15.0,
        "stats": [],
        "model": {**to_plain(RATE.model), "pace": 2.5},
        "workers": 2,
    }


def test_a_record_reads_back_except_drill_and_the_time_limit() -> None:
    back = from_plain(LoadInfo, to_plain(LoadInfo(RATE, SCHEDULE, []))).spec
    assert back.locustfile == RATE.locustfile and back.tags == RATE.tags
    assert (back.model, back.workers, back.users) == (RATE.model, 2, 8)
    assert (back.drill, back.timeout_s) == (True, 900.0)  # not recorded: the defaults
    assert back == RATE  # ... and not compared


def test_a_format_1_record_has_no_model_its_users_stand_alone() -> None:
    written = to_plain(LoadInfo(RATE, SCHEDULE, []))
    old = {k: v for k, v in written.items() if k not in ("model", "workers")}
    back = from_plain(LoadInfo, {**old, "users": 12}).spec
    assert back.model == LoadModel(users=12)
    assert (back.users, back.workers) == (12, 0)


@pytest.mark.parametrize("model", [RATE.model, SPIKE, LoadModel("soak", duration_s=5.0)])
def test_each_model_is_written_with_its_pace_and_reads_back(model: LoadModel) -> None:
    spec = LoadSpec(Path("plans/locustfile.py"), (), 1.0, 1, model=model)
    written = to_plain(LoadInfo(spec, SCHEDULE, []))
    assert written["model"]["pace"] == round(model.pace(), 6)
    assert from_plain(LoadInfo, written).spec.model == model


def test_a_model_ignores_unknown_keys_and_defaults_missing_ones() -> None:
    assert from_plain(LoadModel, {"name": "soak", "duration_s": 5, "future": 1}) == LoadModel(
        "soak", duration_s=5
    )
    assert from_plain(LoadModel, {}) == LoadModel()


def test_a_bad_load_names_its_key() -> None:
    written = to_plain(LoadInfo(RATE, SCHEDULE, []))
    with pytest.raises(Mismatch, match=r"^stats has value 'none'; expected a list$"):
        from_plain(LoadInfo, {**written, "stats": "none"})
    with pytest.raises(Mismatch, match=r"^pause_s is missing$"):
        from_plain(LoadInfo, {k: v for k, v in written.items() if k != "pause_s"})
