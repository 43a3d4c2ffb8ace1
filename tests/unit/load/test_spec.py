"""LoadSpec and Schedule: what the result file records of them, and how older files read."""

from __future__ import annotations

from pathlib import Path

from sandbox.load.models import LoadModel
from sandbox.load.spec import LoadSpec, Schedule

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


def test_the_record_keeps_format_3s_keys_and_leaves_out_what_only_drives_locust() -> None:
    assert RATE.to_dict() == {
        "locustfile": "/repo/plans/locustfile.py",
        "tags": ["tiny", "small"],
        "users": 8,
        "spawn_rate": 8.0,
        "iterations": 100,
        "model": {**RATE.model.to_dict(), "pace": 2.5},
        "workers": 2,
    }


def test_a_record_reads_back_except_drill_and_the_time_limit() -> None:
    back = LoadSpec.from_dict(RATE.to_dict())
    assert back.locustfile == RATE.locustfile and back.tags == RATE.tags
    assert (back.model, back.workers, back.users) == (RATE.model, 2, 8)
    assert (back.drill, back.timeout_s) == (True, 900.0)  # not recorded: the defaults
    assert back == RATE  # ... and not compared


def test_a_format_1_record_has_no_model_its_users_stand_alone() -> None:
    old = {k: v for k, v in RATE.to_dict().items() if k not in ("model", "workers")}
    back = LoadSpec.from_dict({**old, "users": 12})
    assert back.model == LoadModel(users=12)
    assert (back.users, back.workers) == (12, 0)


def test_relative_to_names_the_locustfile_from_the_repository(tmp_path: Path) -> None:
    inside = LoadSpec(tmp_path / "plans" / "locustfile.py", (), 1.0, 1)
    assert inside.relative_to(tmp_path).locustfile == Path("plans/locustfile.py")
    outside = LoadSpec(Path("/elsewhere/mine.py"), (), 1.0, 1)
    assert outside.relative_to(tmp_path) == outside


def test_schedule_round_trip() -> None:
    schedule = Schedule(batches=3, pause_s=5.0, baseline_s=3.0, idle_s=15.0)
    assert list(schedule.to_dict()) == ["batches", "pause_s", "baseline_s", "idle_s"]
    assert Schedule.from_dict(schedule.to_dict()) == schedule
