"""Checkpoints: written every few seconds while a run runs, and marked `harness-died` by the next
command that finds one whose harness is gone (fake results, a fake clock; no server)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from sandbox.cli.main import cli
from sandbox.measure.checkpointer import Checkpointer
from sandbox.results import checkpoints
from sandbox.results import files as result_files
from sandbox.results.conditions import HarnessInfo, running_harness
from sandbox.results.model import RunResult
from sandbox.results.shapes import from_plain, to_plain
from sandbox.system import atomic
from tests.fakes import make_group, make_result


@dataclass
class Clock:
    t: float = 100.0

    def __call__(self) -> float:
        return self.t


def dead_harness() -> HarnessInfo:
    """The identity of a process that has exited (and been reaped)."""
    with subprocess.Popen([sys.executable, "-c", "pass"]) as child:
        pass
    return replace(running_harness(), pid=child.pid)


def checkpoint_of(harness: HarnessInfo, **changes: object) -> RunResult:
    return replace(make_result("jemalloc", status="running"), harness=harness, **changes)  # type: ignore[arg-type]


# --- writing ------------------------------------------------------------------------------------


def test_a_checkpoint_is_written_at_once_then_every_5_s(tmp_path: Path) -> None:
    clock = Clock()
    built: list[float] = []

    def build() -> RunResult:
        built.append(clock.t)
        return replace(make_result(status="running"), ended_at=f"t={clock.t:g}")

    checkpoint = Checkpointer(tmp_path, "run-1", build, clock=clock)
    for t in (100.0, 101.0, 104.9, 105.0, 109.0, 110.0):
        clock.t = t
        checkpoint.maybe()

    assert built == [100.0, 105.0, 110.0]
    assert checkpoint.path == tmp_path / "run-1.partial.json"
    assert result_files.load(checkpoint.path).ended_at == "t=110"
    assert [p.name for p in tmp_path.iterdir()] == ["run-1.partial.json"]  # no temporary file


def test_a_batch_just_done_is_written_at_the_next_tick(tmp_path: Path) -> None:
    clock = Clock()
    built: list[float] = []

    def build() -> RunResult:
        built.append(clock.t)
        return make_result(status="running")

    checkpoint = Checkpointer(tmp_path, "run-1", build, clock=clock)
    checkpoint.maybe()
    clock.t = 101.0
    checkpoint.soon()
    checkpoint.maybe()
    clock.t = 102.0
    checkpoint.maybe()

    assert built == [100.0, 101.0]


def test_a_slow_checkpoint_is_written_less_often(tmp_path: Path) -> None:
    clock = Clock()
    built: list[float] = []

    def slow_build() -> RunResult:
        built.append(clock.t)
        clock.t += 1.0  # 1 s to build and write: at most 5 % of the time, so every 20 s
        return make_result(status="running")

    checkpoint = Checkpointer(tmp_path, "run-1", slow_build, clock=clock)
    for t in range(100, 150):
        clock.t = max(clock.t, float(t))
        checkpoint.maybe()

    assert built == [100.0, 121.0, 142.0]


def test_a_failed_checkpoint_is_remembered_not_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "open", full_disk, raising=False)
    checkpoint = Checkpointer(tmp_path, "run-1", lambda: make_result(status="running"))

    checkpoint.maybe()

    assert checkpoint.failure == (
        f"checkpoints could not be written to {tmp_path}/run-1.partial.json "
        "(No space left on device); a harness killed mid-run would have lost the run"
    )
    assert list(tmp_path.iterdir()) == []


def test_finish_removes_it_and_abandon_relabels_it(tmp_path: Path) -> None:
    checkpoint = Checkpointer(tmp_path, "run-1", lambda: make_result(status="running"))
    checkpoint.abandon("failed", "never written")  # nothing written yet: nothing to relabel
    assert not checkpoint.path.exists()

    checkpoint.maybe()
    checkpoint.abandon("interrupted", "interrupted while stopping; this is its last checkpoint")
    relabelled = result_files.load(checkpoint.path)
    assert (relabelled.status, relabelled.status_detail) == (
        "interrupted",
        "interrupted while stopping; this is its last checkpoint",
    )

    checkpoint.finish()
    assert list(tmp_path.iterdir()) == []


# --- marking --------------------------------------------------------------------------------------


def test_a_checkpoint_of_a_dead_harness_is_marked_and_stays_readable(tmp_path: Path) -> None:
    harness = dead_harness()
    found = checkpoint_of(harness, status_detail="batch 1 stopped at its time limit")
    path = result_files.dump(found, tmp_path / "runs" / f"{found.run_id}.partial.json")

    [settled] = checkpoints.settle([tmp_path])

    marked = result_files.load(path)
    t_end = found.samples["t_s"][-1]
    detail = (
        f"the harness (pid {harness.pid}) died; this is its last checkpoint, written "
        f"{t_end:.0f} s into the run during {found.phases[-1].name}; "
        "batch 1 stopped at its time limit"
    )
    assert (marked.status, marked.status_detail) == ("harness-died", detail)
    assert replace(marked, status="running", status_detail=found.status_detail) == found
    assert settled.describe() == f"marked {path} harness-died: {detail}"
    assert checkpoints.settle([tmp_path]) == []  # marked once


def test_a_live_harness_or_one_elsewhere_is_left_alone(tmp_path: Path) -> None:
    mine = checkpoint_of(running_harness())
    elsewhere = checkpoint_of(replace(dead_harness(), hostname="another-machine"))
    unknown = replace(make_result(status="running"), harness=None, run_id="old")
    for r in (mine, replace(elsewhere, run_id="elsewhere"), unknown):
        result_files.dump(r, tmp_path / f"{r.run_id}.partial.json")

    assert checkpoints.settle([tmp_path]) == []
    assert {r.status for r in result_files.load_all([tmp_path])} == {"running"}


def test_a_checkpoint_beside_its_final_result_is_removed(tmp_path: Path) -> None:
    found = checkpoint_of(dead_harness())
    partial = result_files.dump(found, tmp_path / f"{found.run_id}.partial.json")
    final = result_files.dump(replace(found, status="ok"), tmp_path / f"{found.run_id}.json.gz")

    [settled] = checkpoints.settle([partial])

    assert settled.removed_for == final
    assert [p.name for p in tmp_path.iterdir()] == [final.name]


def test_compare_marks_and_lists_a_dead_harness_run(tmp_path: Path) -> None:
    folder = tmp_path / "exp"
    for r in [*make_group("glibc", 3), *make_group("jemalloc", 3)]:
        result_files.dump(r, folder / f"{r.run_id}.json")
    died = checkpoint_of(dead_harness(), run_id="20260101T000000Z-jemalloc-dead")
    path = result_files.dump(died, folder / f"{died.run_id}.partial.json")

    done = CliRunner().invoke(cli, ["compare", str(folder), "--format", "json"])

    assert done.exit_code == 0, done.output
    assert done.stderr.startswith(f"note: marked {path} harness-died: the harness (pid ")
    data = json.loads(done.stdout)
    assert data["skipped"] == [died.run_id]
    [warning] = [w for w in data["warnings"] if w["kind"] == "skipped"]
    assert warning["message"].startswith(
        f"skipped 1 run(s) that did not finish ok (1 harness-died: {died.run_id}); "
    )


@pytest.mark.parametrize("status", ["running", "harness-died"])
def test_compare_reads_a_checkpoint_as_a_run_that_did_not_finish(status: str) -> None:
    r = make_result(status=status)  # type: ignore[arg-type]
    assert from_plain(RunResult, json.loads(json.dumps(to_plain(r)))).status == status
