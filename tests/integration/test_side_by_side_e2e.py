"""Runs side by side end to end: `sandbox experiment --until-verdict --side-by-side 6` runs the
three rounds of two arms at once, each run a server, a load and a sampler of its own, and looks
once, at the end of that slot (the rule looks where new runs come in)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from sandbox.results import files as result_files
from tests.integration.test_until_verdict_e2e import until_verdict

pytestmark = pytest.mark.e2e


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_six_runs_at_once_each_verified_and_one_look_at_the_slot_end(tmp_path: Path) -> None:
    done, folder = until_verdict(tmp_path, "--side-by-side", "6")

    loaded = result_files.load_all([folder])
    assert len(loaded) == 6
    assert {r.status for r in loaded} == {"ok"}
    assert all(r.allocator.verified_loaded for r in loaded)
    assert len({r.server.pid for r in loaded}) == 6
    windows = [(_at(r.started_at), _at(r.ended_at)) for r in loaded]
    for i, (start, end) in enumerate(windows):  # each ran while another one ran
        assert any(s < end and start < e for j, (s, e) in enumerate(windows) if j != i)
    manifest = json.loads((folder / "experiment.json").read_text())
    assert manifest["side_by_side"] == 6
    assert [look["rounds"] for look in manifest["looks"]] == [3]
    assert "side by side: [1/6], [2/6], [3/6], [4/6], [5/6], [6/6]" in done.stderr
    prefixed = [line for line in done.stderr.splitlines() if line.startswith("[4/6] ")]
    assert any("glibc-again (repeat 2)" in line for line in prefixed)
