"""Runs side by side: an experiment's runs `side_by_side` at a time, each in a child process,
recorded as if run one after another; the stopping rule looks at each round on that round's
runs only; an interrupt reaches every child, which keeps its partial result; a child that dies
leaves its run failed, and the others go on. The fake runs write results whose after-idle RSS
is a function of the run's index, and meet at a rendezvous that only runs at once can reach."""

from __future__ import annotations

import io
import math
import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from sandbox.analysis.sequential import Design
from sandbox.config.run_spec import RunSpec
from sandbox.errors import ConfigError
from sandbox.experiment import manifest
from sandbox.experiment.definition import load_experiment
from sandbox.experiment.execution import _slots
from sandbox.experiment.manifest import Entry
from sandbox.experiment.side_by_side import PrefixedLines
from sandbox.results import files as result_files
from sandbox.results.model import RunResult, Status
from sandbox.units import MIB
from tests.fakes import make_result
from tests.unit.experiment.test_until_verdict import start

LEVEL = {"glibc": 200.0, "jemalloc": 150.0}
RENDEZVOUS_S = 60.0
"""How long a fake run waits for its partners (a rendezvous runs in sequence never reach)."""


class MeetingRuns:
    """A fake run that says it started (a file `started-INDEX` in `meet`), waits until `group`
    runs have started, then writes a result (after-idle RSS from LEVEL, a 2 % wobble by index).
    `die_at`: indexes whose process exits with code 3 instead; `hold`: wait for an interrupt
    (then write an interrupted result)."""

    def __init__(
        self,
        meet: Path,
        group: int,
        die_at: tuple[int, ...] = (),
        hold: bool = False,
        level: dict[str, float] = LEVEL,
    ) -> None:
        self.meet, self.group, self.die_at, self.hold = meet, group, die_at, hold
        self.level = level

    def __call__(self, spec: RunSpec, index: int, total: int) -> tuple[RunResult, Path]:
        status: Status = "ok"
        try:  # from the moment it says it started, an interrupt ends it with a result
            (self.meet / f"started-{index}").write_text(str(os.getpid()))
            self._meet_partners(index, total)
            if index in self.die_at:
                os._exit(3)
            if self.hold:
                time.sleep(RENDEZVOUS_S)
        except KeyboardInterrupt:
            if not self.hold:
                raise
            status = "interrupted"
        fake = make_result(spec.allocator, repeat=spec.repeat, experiment=spec.experiment)
        mib = self.level[spec.allocator] * math.exp(0.02 * math.sin(index))
        result = replace(
            fake,
            run_id=f"20260101T10{index:04d}Z-{spec.allocator}",
            status=status,
            summary=replace(fake.summary, after_idle_rss_bytes=int(mib * MIB)),
        )
        return result, result_files.dump(result, spec.output.results_dir / f"{result.run_id}.json")

    def _meet_partners(self, index: int, total: int) -> None:
        deadline = time.monotonic() + RENDEZVOUS_S
        first = index - index % self.group
        partners = [
            self.meet / f"started-{i}" for i in range(first, min(first + self.group, total))
        ]
        while not all(p.exists() for p in partners):
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {index} waited alone: the runs did not run at once")
            time.sleep(0.01)


def experiment_file(tmp_path: Path, side_by_side: int, repeats: int = 2) -> Path:
    path = tmp_path / "pairs.yml"
    path.write_text(
        f"name: pairs\nallocators: [glibc, jemalloc]\nrepeats: {repeats}\n"
        f"side_by_side: {side_by_side}\niterations: 5\n"
    )
    return path


def test_pairs_run_at_once_in_processes_of_their_own_and_are_recorded_in_plan_order(
    tmp_path: Path,
) -> None:
    meet = tmp_path / "meet"
    meet.mkdir()
    outcome, said = start(experiment_file(tmp_path, 2), MeetingRuns(meet, 2), None)
    pids = {int(p.read_text()) for p in meet.iterdir()}
    assert len(pids) == 4 and os.getpid() not in pids
    assert said.count("side by side: [1/4], [2/4]") == 1
    assert "side by side: [3/4], [4/4]" in said
    m = manifest.load(outcome.folder)
    assert m.side_by_side == 2
    assert [(e.allocator, e.repeat, e.status) for e in m.runs] == [
        ("glibc", 0, "ok"),
        ("jemalloc", 0, "ok"),
        ("glibc", 1, "ok"),
        ("jemalloc", 1, "ok"),
    ]
    assert sorted(r.allocator.name for r in outcome.results) == ["glibc"] * 2 + ["jemalloc"] * 2
    assert not outcome.failures and not outcome.interrupted


def test_slots_of_whole_rounds_look_at_their_ends_only(tmp_path: Path) -> None:
    """Four at once are two rounds of two arms: the looks come after rounds 4 and 6 (a look
    after round 3 would spend alpha on a stop that saves no time), and it stops at 4."""
    meet = tmp_path / "meet"
    meet.mkdir()
    outcome, said = start(experiment_file(tmp_path, 4), MeetingRuns(meet, 4), Design(max_repeats=7))
    m = manifest.load(outcome.folder)
    assert m.sequential is not None
    assert (m.sequential["min_repeats"], m.sequential["max_repeats"]) == (4, 6)
    assert m.sequential["look_every"] == 2
    assert said[0].startswith("side by side: 4 runs at once, each a server of its own")
    assert "a look after every 2 rounds from 4 repeats on" in said[1]
    assert [look["rounds"] for look in m.looks] == [4]
    assert [e.status for e in m.runs] == ["ok"] * 8 + ["pending"] * 4


def test_each_look_sees_only_the_rounds_it_follows(tmp_path: Path) -> None:
    """Three at once cut rounds apart: the slot that ends round 4 also runs round 5's first
    run; the look after round 4 reads four runs an arm all the same."""
    meet = tmp_path / "meet"
    meet.mkdir()
    close = {"glibc": 200.0, "jemalloc": 197.0}  # undecided at 3 and 4 repeats
    fake = MeetingRuns(meet, 3, level=close)
    outcome, _ = start(experiment_file(tmp_path, 3), fake, Design(max_repeats=5))
    m = manifest.load(outcome.folder)
    assert [look["rounds"] for look in m.looks] == [3, 4, 5]
    assert [(c["n"], c["n_reference"]) for c in m.looks[1]["comparisons"]] == [(4, 4)]
    assert [e.status for e in m.runs] == ["ok"] * 10


def test_a_child_that_dies_leaves_its_run_failed_and_the_others_go_on(tmp_path: Path) -> None:
    meet = tmp_path / "meet"
    meet.mkdir()
    outcome, _ = start(experiment_file(tmp_path, 2), MeetingRuns(meet, 2, die_at=(1,)), None)
    m = manifest.load(outcome.folder)
    assert [e.status for e in m.runs] == ["ok", "failed", "ok", "ok"]
    assert m.runs[1].error == "the run's harness process ended (exit code 3) with no result"
    assert len(outcome.results) == 3


def test_an_interrupt_reaches_every_child_which_keeps_its_partial_result(tmp_path: Path) -> None:
    meet = tmp_path / "meet"
    meet.mkdir()

    def interrupt_once_both_started() -> None:
        deadline = time.monotonic() + RENDEZVOUS_S
        while len(list(meet.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    threading.Thread(target=interrupt_once_both_started, daemon=True).start()
    outcome, _ = start(experiment_file(tmp_path, 2), MeetingRuns(meet, 2, hold=True), None)
    m = manifest.load(outcome.folder)
    assert outcome.interrupted
    assert [e.status for e in m.runs] == ["interrupted", "interrupted", "pending", "pending"]
    assert sorted(r.status for r in outcome.results) == ["interrupted", "interrupted"]


def test_slots_hold_at_most_n_runs_to_do_and_leading_done_runs_come_first() -> None:
    def entry(i: int, done: bool) -> Entry:
        e = Entry(i, "glibc", i, {})
        return replace(e, status="ok", file=f"{i}.json") if done else e

    runs = [entry(0, True), entry(1, False), entry(2, True), entry(3, False), entry(4, False)]
    assert _slots(runs, 2) == [[0], [1, 2, 3], [4]]
    assert _slots(runs, 1) == [[0], [1, 2], [3], [4]]
    assert _slots([entry(0, True)], 3) == [[0]]
    assert _slots([], 2) == []


def test_prefixed_lines_prefix_whole_lines_and_are_no_terminal() -> None:
    out = io.StringIO()
    lines = PrefixedLines(out, "[3/8] ")
    lines.write("\r[   1.0 s] batch 1/3 ")
    lines.write("RSS 32 MiB\n\n[3/8] glibc (repeat 2)\nnext")
    assert out.getvalue() == "[3/8] [   1.0 s] batch 1/3 RSS 32 MiB\n[3/8] glibc (repeat 2)\n"
    lines.close()
    assert out.getvalue().endswith("[3/8] next\n")
    assert not lines.isatty()


@pytest.mark.parametrize("value", [0, 9, "two", True])
def test_side_by_side_outside_1_to_8_is_refused_with_the_key(tmp_path: Path, value: object) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(f"allocators: [glibc]\nside_by_side: {value}\n")
    with pytest.raises(ConfigError, match=r"side_by_side has value .*from 1 to 8"):
        load_experiment(path)
