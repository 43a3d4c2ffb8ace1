from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.load import bodies
from sandbox.load.bodies import PLAN_TARGET_BYTES, make_body, write_plans

PLANS_DIR = Path(__file__).resolve().parents[3] / "plans"


@pytest.fixture(scope="module")
def generated() -> dict[str, bytes]:
    return {tag: make_body(tag) for tag in PLAN_TARGET_BYTES}


@pytest.mark.parametrize("tag", list(PLAN_TARGET_BYTES))
def test_size_is_within_3_percent_of_target(generated: dict[str, bytes], tag: str) -> None:
    target = PLAN_TARGET_BYTES[tag]
    assert abs(len(generated[tag]) - target) <= 0.03 * target


@pytest.mark.parametrize("tag", list(PLAN_TARGET_BYTES))
def test_body_shape(generated: dict[str, bytes], tag: str) -> None:
    document = json.loads(generated[tag])
    assert document["eventType"] == "mem-test"
    records = document["payload"]["body"]
    assert [r["index"] for r in records] == list(range(len(records)))
    record = records[0]
    assert list(record) == [
        "_id", "index", "guid", "isActive", "balance", "picture", "age", "eyeColor", "name",
        "gender", "company", "email", "phone", "address", "about", "registered", "latitude",
        "longitude", "tags", "friends", "greeting", "favoriteFruit",
    ]  # fmt: skip
    assert len(record["_id"]) == 24
    int(record["_id"], 16)
    assert [len(part) for part in record["guid"].split("-")] == [8, 4, 4, 4, 12]
    assert record["balance"].startswith("$")
    assert 250 <= len(record["about"]) <= 400
    assert isinstance(record["latitude"], float)
    assert len(record["tags"]) == 7
    assert [f["id"] for f in record["friends"]] == [0, 1, 2]


def test_bodies_are_deterministic(generated: dict[str, bytes]) -> None:
    assert make_body("tiny") == generated["tiny"]


def test_plans_differ() -> None:
    assert make_body("tiny") not in make_body("small")


@pytest.mark.parametrize("tag", list(PLAN_TARGET_BYTES))
def test_committed_plans_match_generator(generated: dict[str, bytes], tag: str) -> None:
    path = PLANS_DIR / f"{tag}.json"
    assert path.read_bytes() == generated[tag], (
        f"{path} is stale; run 'python -m sandbox.load.bodies' and commit the result"
    )


def test_unknown_plan() -> None:
    with pytest.raises(ValueError, match="unknown plan 'huge'; expected one of: tiny, small"):
        make_body("huge")


def test_write_plans_and_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    written = write_plans(tmp_path / "a")
    assert [p.name for p in written] == ["tiny.json", "small.json", "medium.json", "large.json"]
    assert bodies.main([str(tmp_path / "b")]) == 0
    for path in written:
        assert (tmp_path / "b" / path.name).read_bytes() == path.read_bytes()
    assert "tiny.json" in capsys.readouterr().out
