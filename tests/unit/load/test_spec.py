"""LoadSpec: the Locust file named from the repository (what a result records of a load and how
older files read: tests/unit/results/test_load_record.py)."""

from __future__ import annotations

from pathlib import Path

from sandbox.load.spec import LoadSpec


def test_relative_to_names_the_locustfile_from_the_repository(tmp_path: Path) -> None:
    inside = LoadSpec(tmp_path / "plans" / "locustfile.py", (), 1.0, 1)
    assert inside.relative_to(tmp_path).locustfile == Path("plans/locustfile.py")
    outside = LoadSpec(Path("/elsewhere/mine.py"), (), 1.0, 1)
    assert outside.relative_to(tmp_path) == outside
