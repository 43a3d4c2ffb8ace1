"""The experiment manifest and `sandbox experiment --resume`: saved around every run, the rest
run as planned, incomplete runs rerun, a changed file refused (a fake run writes fake results)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from sandbox.cli.main import cli
from sandbox.config import settings as config
from sandbox.config.run_spec import RunSpec
from sandbox.errors import ConfigError, SandboxError
from sandbox.experiment import execution, manifest
from sandbox.experiment.definition import load_experiment, plan_runs
from sandbox.results import files as result_files
from sandbox.results import storage
from sandbox.results.conditions import running_harness
from sandbox.results.model import RunResult
from sandbox.system import atomic
from tests.fakes import make_result

REPO = Path(__file__).resolve().parents[3]
# Shuffled with a seed: a resume must keep this very order.
EXPERIMENT = """\
name: resumable
allocators: [glibc, glibc-arena2, jemalloc]
repeats: 2
order: shuffled
seed: 7
iterations: 5
"""
Plan = list[tuple[str, int]]


class FakeRuns:
    """Stands in for the runner: writes a fake result where the real one would go; `what` maps
    a run's index to what happens instead (an interrupt, an error, a status)."""

    def __init__(self, what: dict[int, str] | None = None) -> None:
        self.what = what or {}
        self.ran: list[int] = []
        self.specs: list[RunSpec] = []
        self.manifests: list[list[str]] = []
        """The statuses on disk as each run started."""

    def __call__(self, spec: RunSpec, index: int, total: int) -> tuple[RunResult, Path]:
        folder = spec.output.results_dir
        on_disk = json.loads((folder / manifest.NAME).read_text())
        self.manifests.append([r["status"] for r in on_disk["runs"]])
        self.ran.append(index)
        self.specs.append(spec)
        what = self.what.get(index, "ok")
        if what == "interrupt":
            raise KeyboardInterrupt
        if what == "error":
            raise SandboxError("the server did not start")
        n = len(list(folder.glob("*.json*"))) + 1
        result = replace(
            make_result(
                spec.allocator,
                repeat=spec.repeat,
                experiment=spec.experiment,
                status="ok" if what == "full" else what,  # type: ignore[arg-type]
            ),
            run_id=f"20260101T1000{n:02d}Z-{spec.allocator}-{index:04x}",
            started_at=f"2026-01-01T10:00:{n:02d}Z",
        )
        if what == "full":  # as storage.save does when the folder's disk is full
            spare = result_files.dump(
                result, folder.parents[1] / "spare" / f"{result.run_id}.json.gz"
            )
            raise storage.ResultWriteError(
                f"could not write the result (No space left on device); it was written to "
                f"{spare} instead",
                written_to=spare,
            )
        return result, result_files.dump(result, folder / f"{result.run_id}.json")


@pytest.fixture
def exp_file(tmp_path: Path) -> Path:
    path = tmp_path / "resumable.yml"
    path.write_text(EXPERIMENT)
    return path


def bench() -> config.Benchmark:
    return config.load_benchmark(REPO / "benchmark.yml")


def start(exp_file: Path, fake: FakeRuns) -> execution.ExperimentOutcome:
    return execution.run_experiment(
        load_experiment(exp_file), bench(), fake, results_dir=exp_file.parent / "out"
    )


def resume(folder: Path, fake: FakeRuns) -> tuple[execution.ExperimentOutcome, list[str]]:
    said: list[str] = []
    outcome = execution.resume_experiment(folder, bench(), fake, on_note=said.append)
    return outcome, said


def planned(exp_file: Path) -> Plan:
    return [(p.allocator, p.repeat) for p in plan_runs(load_experiment(exp_file))]


def statuses(folder: Path) -> list[str]:
    return [e.status for e in manifest.load(folder).runs]


# --- the manifest ---------------------------------------------------------------------------------


def test_the_manifest_is_saved_before_and_after_every_run(exp_file: Path) -> None:
    fake = FakeRuns()

    outcome = start(exp_file, fake)

    assert fake.manifests == [["ok"] * i + ["running"] + ["pending"] * (5 - i) for i in range(6)]
    m = manifest.load(outcome.folder)
    assert [(e.allocator, e.repeat) for e in m.runs] == planned(exp_file)
    assert (m.file, m.file_text, m.file_sha256) == (
        str(exp_file),
        EXPERIMENT,
        manifest.sha256(EXPERIMENT),
    )
    assert m.settings["iterations"] == 5 and m.seed == 7
    assert m.harness == running_harness()
    assert [e.file for e in m.runs] == [p.name for p in outcome.paths]
    assert not list(outcome.folder.glob(".*.tmp-*"))


def test_an_interrupt_leaves_a_manifest_saying_which_runs_are_done(exp_file: Path) -> None:
    outcome = start(exp_file, FakeRuns({2: "interrupt"}))

    assert outcome.interrupted
    assert statuses(outcome.folder) == ["ok", "ok", "interrupted", "pending", "pending", "pending"]


def test_a_full_disk_stops_the_experiment_naming_the_fix(
    exp_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = 0
    write = atomic.write_atomic

    def fails_on_the_fourth(path: Path, data: bytes) -> None:
        nonlocal writes
        writes += 1
        if writes == 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write(path, data)

    monkeypatch.setattr("sandbox.system.state_file.write_atomic", fails_on_the_fourth)
    fake = FakeRuns()
    with pytest.raises(manifest.ManifestWriteError) as info:
        start(exp_file, fake)

    [folder] = (exp_file.parent / "out").iterdir()
    assert str(info.value) == (
        f"could not write {folder / 'experiment.json'} (No space left on device); the runs so "
        f"far are in {folder}: make room, then continue with: sandbox experiment --resume {folder}"
    )
    assert fake.ran == [0]  # start, run 1 started, run 1 done, run 2 started: refused
    assert statuses(folder)[:2] == ["ok", "pending"]


def test_a_result_sent_to_the_fallback_stops_the_experiment_and_is_taken_back(
    exp_file: Path,
) -> None:
    with pytest.raises(SandboxError) as info:
        start(exp_file, FakeRuns({1: "full"}))

    [folder] = (exp_file.parent / "out").iterdir()
    assert str(info.value).endswith(
        f"; the experiment stops: make room in {folder}, then continue with: "
        f"sandbox experiment --resume {folder}"
    )
    entry = manifest.load(folder).runs[1]
    assert entry.status == "failed" and entry.fallback is not None
    spare = Path(entry.fallback)
    fake = FakeRuns()

    _, said = resume(folder, fake)

    assert fake.ran == [2, 3, 4, 5]  # run 2 is not measured again
    assert said[0] == f"note: run 2: took its result back from {spare} into {spare.name}"
    assert manifest.load(folder).runs[1].file == spare.name
    assert result_files.load(folder / spare.name).status == "ok" and not spare.exists()


# --- resuming -------------------------------------------------------------------------------------


def test_resume_runs_only_what_is_missing_in_the_planned_order(exp_file: Path) -> None:
    first = start(exp_file, FakeRuns({2: "interrupt"}))
    fake = FakeRuns()

    outcome, said = resume(first.folder, fake)

    assert fake.ran == [2, 3, 4, 5]
    order = planned(exp_file)
    assert [(s.allocator, s.repeat) for s in fake.specs] == order[2:]
    assert {s.output.results_dir for s in fake.specs} == {first.folder}
    assert statuses(first.folder) == ["ok"] * 6
    assert [(r.allocator.name, r.repeat) for r in outcome.results] == order
    name = [f"{a} (repeat {r + 1})" for a, r in order]
    files = [e.file for e in manifest.load(first.folder).runs]
    assert said == [
        f"resuming {first.folder}: 2 of 6 runs done, 1 to run again, 3 not yet run",
        f"skip  [1/6] {name[0]}: ok in {files[0]}",
        f"skip  [2/6] {name[1]}: ok in {files[1]}",
        f"rerun [3/6] {name[2]}: it was interrupted",
    ]
    assert resume(first.folder, FakeRuns())[0].results == outcome.results  # nothing left


def test_a_run_whose_harness_died_is_rerun_and_its_checkpoint_kept(exp_file: Path) -> None:
    first = start(exp_file, FakeRuns({1: "interrupt"}))
    folder = first.folder
    # As a SIGKILL leaves it: run 2 `running` in the manifest, its checkpoint in the folder.
    m = manifest.load(folder)
    manifest.save(m.with_entry(replace(m.runs[1], status="running")), folder)
    with subprocess.Popen([sys.executable, "-c", "pass"]) as dead:
        pass
    allocator, repeat = planned(exp_file)[1]
    partial = replace(
        make_result(allocator, repeat=repeat, experiment="resumable", status="running"),
        run_id="20260101T095959Z-killed",
        harness=replace(running_harness(), pid=dead.pid),
    )
    result_files.dump(partial, folder / f"{partial.run_id}.partial.json")
    fake = FakeRuns()

    outcome, said = resume(folder, fake)

    assert fake.ran == [1, 2, 3, 4, 5]
    entry = manifest.load(folder).runs[1]
    assert entry.status == "ok"
    assert entry.superseded == (
        manifest.Attempt("harness-died", partial.run_id, f"{partial.run_id}.partial.json"),
    )
    assert said[0].startswith(f"note: marked {folder / partial.run_id}.partial.json harness-died")
    assert said[3] == (
        f"rerun [2/6] {allocator} (repeat {repeat + 1}): it was harness-died "
        f"({partial.run_id}.partial.json)"
    )
    assert result_files.load(folder / f"{partial.run_id}.partial.json").status == "harness-died"
    assert len(outcome.results) == 6  # the checkpoint is not among them


def test_a_run_killed_before_its_first_checkpoint_is_rerun(exp_file: Path) -> None:
    first = start(exp_file, FakeRuns({1: "interrupt"}))
    m = manifest.load(first.folder)
    manifest.save(m.with_entry(replace(m.runs[1], status="running")), first.folder)
    fake = FakeRuns()

    _, said = resume(first.folder, fake)

    assert fake.ran == [1, 2, 3, 4, 5]
    assert said[2].endswith(": it was harness-died")
    assert manifest.load(first.folder).runs[1].superseded == (
        manifest.Attempt("harness-died", error="the harness died before a checkpoint"),
    )


def test_a_result_the_manifest_missed_counts_as_done(exp_file: Path) -> None:
    first = start(exp_file, FakeRuns())
    folder = first.folder
    m = manifest.load(folder)
    # The harness died between writing run 6's result and recording it.
    manifest.save(
        m.with_entry(replace(m.runs[5], status="running", run_id=None, file=None)), folder
    )
    fake = FakeRuns()

    _, said = resume(folder, fake)

    assert fake.ran == []
    assert statuses(folder) == ["ok"] * 6
    assert said[0] == (
        f"note: run 6 ended ok in {m.runs[5].file} before its harness could record it; "
        "it counts as done"
    )


def test_failed_runs_are_rerun_and_the_servers_fate_is_kept(exp_file: Path) -> None:
    first = start(exp_file, FakeRuns({0: "error", 1: "failed", 2: "server-died"}))
    assert statuses(first.folder)[:3] == ["failed", "failed", "server-died"]
    fake = FakeRuns()

    outcome, _ = resume(first.folder, fake)

    assert fake.ran == [0, 1]
    assert statuses(first.folder) == ["ok", "ok", "server-died", "ok", "ok", "ok"]
    assert [r.status for r in outcome.results].count("server-died") == 1


def test_a_changed_experiment_file_is_refused_naming_the_change(exp_file: Path) -> None:
    first = start(exp_file, FakeRuns({2: "interrupt"}))
    exp_file.write_text(
        EXPERIMENT.replace("repeats: 2", "repeats: 3").replace("seed: 7", "seed: 8")
    )
    fake = FakeRuns()

    with pytest.raises(ConfigError) as info:
        resume(first.folder, fake)

    assert info.value.exit_code == 2
    assert str(info.value) == (
        f"{exp_file} changed since {first.folder} began: repeats 2 -> 3, seed 7 -> 8; put it "
        "back as it was, or run the experiment anew without --resume"
    )
    assert fake.ran == []


def test_a_changed_benchmark_setting_is_refused(exp_file: Path, tmp_path: Path) -> None:
    first = start(exp_file, FakeRuns({2: "interrupt"}))
    changed = tmp_path / "benchmark.yml"
    (tmp_path / "plans").symlink_to(REPO / "plans", target_is_directory=True)
    text = (REPO / "benchmark.yml").read_text()
    changed.write_text(text.replace("  sleep_ms: ", "  sleep_ms: 7 #", 1))

    with pytest.raises(ConfigError) as info:
        execution.resume_experiment(first.folder, config.load_benchmark(changed), FakeRuns())

    assert str(info.value).startswith(f"{changed} changed since {first.folder} began: sleep_ms ")
    assert str(info.value).endswith(
        " -> 7; put it back as it was, or run the experiment anew without --resume"
    )


def test_comments_only_or_a_missing_file_resume_from_the_copy(exp_file: Path) -> None:
    first = start(exp_file, FakeRuns({4: "interrupt"}))
    exp_file.write_text("# the same runs\n" + EXPERIMENT)
    _, said = resume(first.folder, FakeRuns({5: "interrupt"}))
    assert said[0] == f"note: {exp_file} changed in comments or layout only; resuming as planned"

    exp_file.unlink()
    fake = FakeRuns()
    _, said = resume(first.folder, fake)
    assert said[0] == (
        f"note: {exp_file} is gone; resuming from its copy in {first.folder / 'experiment.json'}"
    )
    assert fake.ran == [5]


def test_a_folder_in_use_is_refused(exp_file: Path) -> None:
    first = start(exp_file, FakeRuns({2: "interrupt"}))
    with manifest.lock(first.folder), pytest.raises(SandboxError) as info:
        resume(first.folder, FakeRuns())
    assert str(info.value) == (
        f"{first.folder} is being run by another sandbox (pid {os.getpid()}); wait for it to "
        "finish, or stop it, then resume"
    )


def test_a_folder_without_a_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxError) as info:
        resume(tmp_path, FakeRuns())
    assert str(info.value) == (
        f"{tmp_path}: no experiment.json; --resume takes the folder of an experiment "
        "(results/<name>-<time>/)"
    )


# --- the command ----------------------------------------------------------------------------------


def test_the_command_resumes_and_refuses_a_changed_file(
    exp_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = start(exp_file, FakeRuns({3: "interrupt"}))
    monkeypatch.setattr("sandbox.measure.runner.run_once", lambda spec, **_: FakeRuns()(spec, 0, 1))
    invoke = CliRunner().invoke

    done = invoke(cli, ["experiment", "--resume", str(first.folder)])

    assert done.exit_code == 0, done.output
    assert (
        f"resuming {first.folder}: 3 of 6 runs done, 1 to run again, 2 not yet run" in done.stderr
    )
    assert "[6/6] " in done.stderr and "[1/6] " not in done.stderr.replace("skip  [1/6]", "")
    assert f"comparison: {first.folder / 'comparison.md'}" in done.stdout

    exp_file.write_text(EXPERIMENT.replace("iterations: 5", "iterations: 6"))
    done = invoke(cli, ["experiment", "--resume", str(first.folder)])
    assert done.exit_code == 2
    assert done.stderr.splitlines()[-1] == (
        f"Error: {exp_file} changed since {first.folder} began: overrides.iterations 5 -> 6; "
        "put it back as it was, or run the experiment anew without --resume"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give an experiment file, or --resume DIR (one of them)"),
        (["x.yml", "--resume", "."], "give an experiment file, or --resume DIR (one of them)"),
        (
            ["--resume", ".", "--repeats", "3"],
            "--resume runs DIR as it was planned (its manifest keeps the repeats and any "
            "stopping rule): drop --repeats",
        ),
        (
            ["--resume", ".", "--until-verdict", "--max-repeats", "5", "--results-dir", "."],
            "--resume runs DIR as it was planned (its manifest keeps the repeats and any "
            "stopping rule): drop --until-verdict and --max-repeats and --results-dir",
        ),
        (
            ["x.yml", "--until-verdict", "--repeats", "3"],
            "--until-verdict decides the repeats: drop --repeats (--max-repeats sets the cap)",
        ),
        (
            ["x.yml", "--min-effect", "0.1"],
            "--min-effect applies only with --until-verdict",
        ),
    ],
)
def test_resume_usage_errors(args: list[str], message: str) -> None:
    done = CliRunner().invoke(cli, ["experiment", *args])
    assert done.exit_code == 2
    assert done.stderr.splitlines()[-1] == f"Error: {message}"
