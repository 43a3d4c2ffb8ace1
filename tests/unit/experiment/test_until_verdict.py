"""`sandbox experiment --until-verdict`: the experiment looks after every round from 3 repeats
on, says what it saw, stops when decided or at the cap, records the looks and the stop in its
manifest, and a resume continues the sequence (a fake run writes results whose after-idle RSS
the test chooses)."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from sandbox.analysis.sequential import Design
from sandbox.cli.main import cli
from sandbox.config import settings as config
from sandbox.config.run_spec import RunSpec
from sandbox.errors import ConfigError
from sandbox.experiment import execution, manifest
from sandbox.experiment.definition import load_experiment
from sandbox.experiment.side_by_side import RunFn
from sandbox.results import files as result_files
from sandbox.results.model import RunResult
from sandbox.units import MIB
from tests.fakes import make_result

REPO = Path(__file__).resolve().parents[3]
EXPERIMENT = """\
name: until
allocators: [glibc, jemalloc]
repeats: 2
iterations: 5
"""


class FakeRuns:
    """Writes a fake result whose after-idle RSS is `level[allocator]` MiB with a relative
    spread `rel`; interrupts at the indexes in `interrupt`."""

    def __init__(
        self, level: dict[str, float], rel: float, interrupt: tuple[int, ...] = (), seed: int = 1
    ) -> None:
        self.level, self.rel, self.interrupt = level, rel, interrupt
        self.rng = random.Random(seed)
        self.ran: list[int] = []

    def __call__(self, spec: RunSpec, index: int, total: int) -> tuple[RunResult, Path]:
        if index in self.interrupt:
            self.interrupt = tuple(i for i in self.interrupt if i != index)
            raise KeyboardInterrupt
        self.ran.append(index)
        folder = spec.output.results_dir
        fake = make_result(spec.allocator, repeat=spec.repeat, experiment=spec.experiment)
        mib = self.level[spec.allocator] * math.exp(self.rel * self.rng.gauss(0.0, 1.0))
        result = replace(
            fake,
            run_id=f"20260101T10{index:04d}Z-{spec.allocator}",
            started_at=f"2026-01-01T10:{index // 60:02d}:{index % 60:02d}Z",
            summary=replace(fake.summary, after_idle_rss_bytes=int(mib * MIB)),
        )
        return result, result_files.dump(result, folder / f"{result.run_id}.json")


@pytest.fixture
def exp_file(tmp_path: Path) -> Path:
    path = tmp_path / "until.yml"
    path.write_text(EXPERIMENT)
    return path


def start(
    exp_file: Path, fake: RunFn, design: Design | None
) -> tuple[execution.ExperimentOutcome, list[str]]:
    """Run the experiment in `exp_file` with `fake` runs; its outcome and its notes."""
    said: list[str] = []
    outcome = execution.run_experiment(
        load_experiment(exp_file),
        config.load_benchmark(REPO / "benchmark.yml"),
        fake,
        results_dir=exp_file.parent / "out",
        on_note=said.append,
        design=design,
    )
    return outcome, said


SEPARATED = {"glibc": 200.0, "jemalloc": 150.0}
SAME = {"glibc": 200.0, "jemalloc": 200.0}


def test_separated_arms_stop_after_three_rounds(exp_file: Path) -> None:
    fake = FakeRuns(SEPARATED, 0.02)
    outcome, said = start(exp_file, fake, Design(max_repeats=8))

    assert fake.ran == [0, 1, 2, 3, 4, 5]
    m = manifest.load(outcome.folder)
    assert m.repeats == 8 and len(m.runs) == 16
    assert [e.status for e in m.runs] == ["ok"] * 6 + ["pending"] * 10
    assert m.sequential == Design(max_repeats=8).to_dict()
    assert [(seen["rounds"], seen["reason"]) for seen in m.looks] == [(3, "decided")]
    assert m.looks[0]["comparisons"][0]["outcome"] == "differs"
    summary = "look 1 of 6 after 3 repeats (97.5% intervals): every comparison decided; stop"
    assert m.stop == {"rounds": 3, "reason": "decided", "summary": summary}
    assert outcome.stop == summary
    assert said[0] == (
        "until a verdict: up to 8 repeats (16 runs); a look after every round from 3 repeats "
        "on, its interval at 97.5%, then 99.5% at each of the 5 others; it stops once every "
        "comparison's interval excludes 1.00 or lies inside [0.952, 1.050]"
    )
    assert said[1] == summary
    assert said[2].startswith("  jemalloc / glibc 0.7")
    assert said[2].endswith(": excludes 1.00 -> differs")
    assert said[3] == "10 planned runs not needed; they stay pending in experiment.json"
    assert len(outcome.results) == 6


def test_arms_that_do_not_differ_run_to_the_cap_looking_each_round(exp_file: Path) -> None:
    fake = FakeRuns(SAME, 0.10)
    outcome, said = start(exp_file, fake, Design(max_repeats=5))

    assert fake.ran == list(range(10))
    m = manifest.load(outcome.folder)
    assert [(seen["rounds"], seen["reason"]) for seen in m.looks] == [
        (3, "continue"),
        (4, "continue"),
        (5, "cap"),
    ]
    assert [line for line in said if line.startswith("look ")] == [
        "look 1 of 3 after 3 repeats (97.5% intervals): not decided yet; one more round "
        "(up to 2 more)",
        "look 2 of 3 after 4 repeats (98.8% intervals): not decided yet; one more round "
        "(up to 1 more)",
        "look 3 of 3 after 5 repeats (98.8% intervals): the cap of 5 repeats; stop, 1 undecided",
    ]
    assert m.stop is not None and m.stop["reason"] == "cap"


def test_a_resume_continues_the_sequence_and_a_stopped_one_runs_nothing(exp_file: Path) -> None:
    # interrupted in round 4 (runs 6 and 7), after the look at 3 said go on
    first, _ = start(exp_file, FakeRuns(SAME, 0.10, interrupt=(7,)), Design(max_repeats=5))
    m = manifest.load(first.folder)
    assert [seen["rounds"] for seen in m.looks] == [3]
    assert m.stop is None

    said: list[str] = []
    fake = FakeRuns(SAME, 0.10, seed=2)
    bench = config.load_benchmark(REPO / "benchmark.yml")
    outcome = execution.resume_experiment(first.folder, bench, fake, on_note=said.append)

    assert fake.ran == [7, 8, 9]
    m = manifest.load(first.folder)
    assert [(seen["rounds"], seen["reason"]) for seen in m.looks] == [
        (3, "continue"),
        (4, "continue"),
        (5, "cap"),
    ]
    assert [seen["comparisons"][0]["n"] for seen in m.looks] == [3, 4, 5]
    assert outcome.stop.startswith("look 3 of 3 after 5 repeats")

    again: list[str] = []
    idle = FakeRuns(SAME, 0.10)
    execution.resume_experiment(first.folder, bench, idle, on_note=again.append)
    assert idle.ran == []
    assert again == [
        f"{first.folder}: its stopping rule already stopped it ({outcome.stop}); "
        "nothing left to run"
    ]


def test_a_look_missed_by_a_killed_harness_is_taken_on_resume(exp_file: Path) -> None:
    first, _ = start(exp_file, FakeRuns(SEPARATED, 0.02), Design(max_repeats=4))
    # as if killed after the sixth result was recorded but before the look was
    m = manifest.load(first.folder)
    manifest.save(replace(m, looks=(), stop=None), first.folder)
    said: list[str] = []
    fake = FakeRuns(SEPARATED, 0.02)
    bench = config.load_benchmark(REPO / "benchmark.yml")
    outcome = execution.resume_experiment(first.folder, bench, fake, on_note=said.append)

    assert fake.ran == []
    assert [seen["rounds"] for seen in manifest.load(first.folder).looks] == [3]
    assert outcome.stop.startswith("look 1 of 2 after 3 repeats")


def test_the_cli_passes_the_rule_and_prints_the_stop(
    exp_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRuns(SEPARATED, 0.02)
    monkeypatch.setattr("sandbox.cli.commands.experiment.run_numbered", fake)
    monkeypatch.setattr(execution, "report", lambda outcome, baseline: ("the table", []))
    done = CliRunner().invoke(
        cli,
        [
            "experiment",
            str(exp_file),
            "--until-verdict",
            "--max-repeats",
            "4",
            "--min-effect",
            "0.1",
            "--results-dir",
            str(exp_file.parent / "out"),
        ],
    )
    assert done.exit_code == 0, done.output
    folder = next((exp_file.parent / "out").iterdir())
    m = manifest.load(folder)
    assert m.sequential == Design(max_repeats=4, min_effect=0.1).to_dict()
    assert fake.ran == [0, 1, 2, 3, 4, 5]
    assert (
        "stopping rule: look 1 of 2 after 3 repeats (97.5% intervals): every comparison "
        f"decided; stop (looks in {folder / 'experiment.json'})"
    ) == done.stdout.splitlines()[-1]


def test_the_cli_says_what_undecided_at_the_cap_means(
    exp_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sandbox.cli.commands.experiment.run_numbered", FakeRuns(SAME, 0.10))
    monkeypatch.setattr(execution, "report", lambda outcome, baseline: ("the table", []))
    out = str(exp_file.parent / "out")
    args = ["experiment", str(exp_file), "--until-verdict", "--max-repeats", "3"]
    done = CliRunner().invoke(cli, [*args, "--results-dir", out])
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines()[-1] == (
        "  undecided means no verdict: the table's 95 % intervals do not allow for the looks, "
        "so one excluding 1.00 there is not a difference shown at 5 %; to decide, run it again "
        "with a higher --max-repeats"
    )


def test_one_group_has_nothing_to_decide_and_is_refused_before_any_run(tmp_path: Path) -> None:
    path = tmp_path / "alone.yml"
    path.write_text("allocators: [glibc]\niterations: 5\n")
    fake = FakeRuns(SAME, 0.1)
    with pytest.raises(ConfigError) as err:
        start(path, fake, Design())
    assert str(err.value) == (
        f"{path}: one group only (glibc), so --until-verdict has nothing to compare; add an "
        "allocator or a vary setting, or drop --until-verdict"
    )
    assert fake.ran == []
