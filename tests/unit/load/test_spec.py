"""LoadSpec: the Locust file named from the repository (what a result records of a load and how
older files read: tests/unit/results/test_load_record.py)."""

from __future__ import annotations

from pathlib import Path

from sandbox.load.models import LoadModel
from sandbox.load.spec import LoadSpec

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


def test_relative_to_names_the_locustfile_from_the_repository(tmp_path: Path) -> None:
    inside = LoadSpec(tmp_path / "plans" / "locustfile.py", (), 1.0, 1)
    assert inside.relative_to(tmp_path).locustfile == Path("plans/locustfile.py")
    outside = LoadSpec(Path("/elsewhere/mine.py"), (), 1.0, 1)
    assert outside.relative_to(tmp_path) == outside
