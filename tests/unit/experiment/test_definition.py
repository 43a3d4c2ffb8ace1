"""Experiment files: loading, validation messages, the run order, and running with a fake run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from sandbox.config import settings as config
from sandbox.config.run_spec import RunSpec
from sandbox.errors import AllocatorError, ConfigError, ServerError
from sandbox.experiment import execution
from sandbox.experiment.definition import Experiment, PlannedRun, load_experiment, plan_runs
from sandbox.results.files import dump
from sandbox.results.model import RunResult
from tests.fakes import make_result

REPO = Path(__file__).resolve().parents[3]
EXPERIMENTS = sorted((REPO / "experiments").glob("*.yml"))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_shipped_experiment_loads(path: Path) -> None:
    exp = load_experiment(path)

    assert exp.name == path.stem
    assert exp.repeats >= 1
    assert exp.allocators
    assert exp.path == path
    # Every run it plans can be built against the repository's benchmark.yml.
    bench = config.load_benchmark(REPO / "benchmark.yml")
    bench = replace(bench, allocators={**bench.allocators, **exp.custom_allocators})
    for run in plan_runs(exp):
        config.build_spec(bench, {**exp.overrides, **run.parameters, "allocator": run.allocator})


def test_shipped_experiments_exist() -> None:
    assert {p.stem for p in EXPERIMENTS} >= {"quick", "allocators", "aa-control", "handler"}


def test_values_and_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "concurrency: 8\nrun:\n  tags: [tiny, large]\nserver:\n  sleep_ms: 0\n")

    exp = load_experiment(path)

    assert exp == Experiment(
        name="exp",
        description="",
        allocators=("glibc", "jemalloc"),
        repeats=3,
        order="interleaved",
        seed=0,
        baseline=None,
        overrides={"concurrency": 8, "tags": ("tiny", "large"), "sleep_ms": 0},
        path=path,
    )


# --- run order ------------------------------------------------------------------------------


def make_experiment(
    allocators: Sequence[str] = ("glibc", "jemalloc"),
    repeats: int = 3,
    order: str = "interleaved",
    seed: int = 0,
    vary: dict[str, tuple[object, ...]] | None = None,
) -> Experiment:
    return Experiment(
        name="t",
        description="",
        allocators=tuple(allocators),
        repeats=repeats,
        order=order,
        seed=seed,
        baseline=None,
        overrides={},
        vary=vary or {},
    )


def groups(runs: Sequence[PlannedRun]) -> list[tuple[str, tuple[tuple[str, object], ...]]]:
    return [(r.allocator, tuple(sorted(r.parameters.items()))) for r in runs]


def test_interleaved_alternates_the_allocators() -> None:
    runs = plan_runs(make_experiment(repeats=3))

    assert [(r.allocator, r.repeat) for r in runs] == [
        ("glibc", 0), ("jemalloc", 0),
        ("glibc", 1), ("jemalloc", 1),
        ("glibc", 2), ("jemalloc", 2),
    ]  # fmt: skip
    assert all(r.parameters == {} for r in runs)


def test_interleaved_with_vary_runs_every_combination_each_round() -> None:
    runs = plan_runs(make_experiment(repeats=2, vary={"handler": ("sync", "async")}))

    one_round = [
        ("glibc", (("handler", "sync"),)),
        ("jemalloc", (("handler", "sync"),)),
        ("glibc", (("handler", "async"),)),
        ("jemalloc", (("handler", "async"),)),
    ]
    assert groups(runs) == one_round * 2
    assert [r.repeat for r in runs] == [0] * 4 + [1] * 4


def test_cases_are_groups_each_round(tmp_path: Path) -> None:
    text = "allocators: [glibc, jemalloc]\nrepeats: 2\ncases:\n  - {}\n  - {leak_bytes: 1KiB}\n"
    exp = load_experiment(write(tmp_path, text))
    assert exp.cases == ({}, {"leak_bytes": 1024})
    runs = plan_runs(exp)
    assert [(r.allocator, dict(r.parameters), r.repeat) for r in runs] == [
        ("glibc", {}, 0),
        ("jemalloc", {}, 0),
        ("glibc", {"leak_bytes": 1024}, 0),
        ("jemalloc", {"leak_bytes": 1024}, 0),
        ("glibc", {}, 1),
        ("jemalloc", {}, 1),
        ("glibc", {"leak_bytes": 1024}, 1),
        ("jemalloc", {"leak_bytes": 1024}, 1),
    ]


def test_shuffled_is_reproducible_and_keeps_rounds_whole() -> None:
    names = ("glibc", "glibc-arena2", "jemalloc", "mimalloc", "tcmalloc")
    exp = make_experiment(names, repeats=4, order="shuffled", seed=20261123)

    runs = plan_runs(exp)

    assert runs == plan_runs(exp)
    assert len(runs) == 20
    for r in range(4):
        round_ = runs[r * 5 : (r + 1) * 5]
        assert {run.repeat for run in round_} == {r}
        assert sorted(run.allocator for run in round_) == sorted(names)
    # Shuffled for real: not the interleaved order, and each round in its own order.
    assert runs != plan_runs(replace(exp, order="interleaved"))
    assert len({tuple(groups(runs[i : i + 5])) for i in range(0, 20, 5)}) > 1
    assert runs != plan_runs(replace(exp, seed=1))


# --- validation messages --------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yml"
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert info.value.exit_code == 2
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("concurency: 4\n", "unknown key 'concurency' (did you mean 'concurrency'?)"),
        ("repeat: 5\n", "unknown key 'repeat' (did you mean 'repeats'?)"),
        ("repeats: 0\n", "repeats has value 0; expected a whole number >= 1"),
        ("repeats: true\n", "repeats has value True; expected a whole number >= 1"),
        ("order: random\n", "order has value 'random'; expected interleaved or shuffled"),
        ("seed: abc\n", "seed has value 'abc'; expected a whole number"),
        (
            "vary:\n  sleepms: [0, 150]\n",
            "vary.sleepms is not a setting; use a name such as sleep_ms or handler",
        ),
        ("vary:\n  handler: sync\n", "vary.handler must be a non-empty list of values"),
        (
            "vary:\n  handler: [sync, threads]\n",
            "vary.handler has value 'threads'; expected one of: sync, async",
        ),
        ("vary: [handler]\n", "vary must map a setting to a list of values"),
        ("allocators: jemalloc\n", "allocators must be a list of allocator names"),
        (
            "name: my experiment\n",
            "name has value 'my experiment'; expected letters, digits, - or _",
        ),
        ("server:\n  sleep_ms: -1\n", "server.sleep_ms has value -1; expected a whole number >= 0"),
        (
            "vary:\n  leak_bytes: [0, 30 KiB, lots]\n",
            "vary.leak_bytes has value 'lots'; expected a size such as 30KiB, or 0 (off)",
        ),
        ("cases: {leak_bytes: 0}\n", "cases must be a non-empty list of setting: value mappings"),
        (
            "cases:\n  - {leakbytes: 1KiB}\n",
            "cases[0].leakbytes is not a setting; use a name such as leak_bytes",
        ),
        (
            "cases:\n  - {}\n  - {leak_kind: huge}\n",
            "cases[1].leak_kind has value 'huge'; expected one of: small, large",
        ),
        (
            "vary:\n  handler: [sync]\ncases:\n  - {cache_docs: 5}\n",
            "give vary or cases, not both (cases name each group)",
        ),
        (
            "custom_allocators:\n  je2: {libary: libjemalloc.so.2}\n",
            "allocators.je2: unknown key 'libary'; known: library, env, package",
        ),
    ],
)
def test_bad_file_names_file_key_and_fix(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    assert error_of(path) == f"{path}: {message}"


def test_missing_file(tmp_path: Path) -> None:
    assert error_of(tmp_path / "nope.yml") == f"{tmp_path / 'nope.yml'}: no such file"


# --- run_experiment with a fake run ---------------------------------------------------------


class FakeRuns:
    """Stands in for `sandbox.measure.runner.run_once`: records specs, returns fake results."""

    def __init__(self, statuses: dict[int, str] | None = None) -> None:
        self.specs: list[RunSpec] = []
        self.statuses = statuses or {}

    def __call__(self, spec: RunSpec, index: int, total: int) -> tuple[RunResult, Path]:
        self.specs.append(spec)
        what = self.statuses.get(index, "ok")
        if what == "raise-interrupt":
            raise KeyboardInterrupt
        if what == "raise-server-error":
            raise ServerError("the server did not answer /health within 30 s")
        result = make_result(
            spec.allocator,
            repeat=spec.repeat,
            experiment=spec.experiment,
            status="ok" if what == "ok" else "server-died",
            parameters=dict(spec.parameters),
        )
        return result, spec.output.results_dir / f"{result.run_id}.json"


def run(tmp_path: Path, text: str, fake: FakeRuns) -> execution.ExperimentOutcome:
    exp = load_experiment(write(tmp_path, text))
    bench = config.load_benchmark(REPO / "benchmark.yml")
    return execution.run_experiment(exp, bench, fake, results_dir=tmp_path / "out")


EXPERIMENT = "allocators: [glibc, glibc-arena2]\nrepeats: 2\niterations: 5\n"


def test_run_experiment_builds_each_spec_and_writes_the_manifest(tmp_path: Path) -> None:
    fake = FakeRuns()
    text = EXPERIMENT + "vary:\n  sleep_ms: [0, 50]\n"

    outcome = run(tmp_path, text, fake)

    assert len(fake.specs) == 8
    assert {s.output.results_dir for s in fake.specs} == {outcome.folder}
    assert outcome.folder.parent == tmp_path / "out"
    assert outcome.folder.name.startswith("exp-")
    assert [(s.allocator, s.server.settings.sleep_ms, s.repeat) for s in fake.specs[:4]] == [
        ("glibc", 0, 0), ("glibc-arena2", 0, 0), ("glibc", 50, 0), ("glibc-arena2", 50, 0),
    ]  # fmt: skip
    assert {s.load.iterations for s in fake.specs} == {5}
    assert [dict(s.parameters) for s in fake.specs[:2]] == [{"sleep_ms": 0}] * 2
    manifest = json.loads((outcome.folder / "experiment.json").read_text())
    assert manifest["format"] == "sandbox-experiment"
    assert manifest["vary"] == {"sleep_ms": [0, 50]}
    assert [r["status"] for r in manifest["runs"]] == ["ok"] * 8
    assert not outcome.interrupted and outcome.failures == []


def test_vary_sets_a_truth_by_its_name(tmp_path: Path) -> None:
    fake = FakeRuns()
    text = EXPERIMENT + "server:\n  leak_kind: large\nvary:\n  leak_bytes: [0, 30KiB]\n"

    run(tmp_path, text, fake)

    settings = [s.server.settings for s in fake.specs[:4]]
    assert [(t.leak_bytes, t.leak_kind) for t in settings] == [
        (0, "large"), (0, "large"), (30720, "large"), (30720, "large"),
    ]  # fmt: skip
    assert [dict(s.parameters) for s in fake.specs[2:4]] == [{"leak_bytes": 30720}] * 2


def test_a_failed_run_does_not_stop_the_others(tmp_path: Path) -> None:
    outcome = run(tmp_path, EXPERIMENT, FakeRuns({1: "died"}))

    assert [r.status for r in outcome.results] == ["ok", "server-died", "ok", "ok"]
    assert len(outcome.failures) == 1
    assert outcome.failures[0].endswith(": server server-died during batch-2")
    assert not outcome.interrupted


def test_an_interrupt_stops_the_experiment(tmp_path: Path) -> None:
    fake = FakeRuns({2: "raise-interrupt"})

    outcome = run(tmp_path, EXPERIMENT, fake)

    assert outcome.interrupted
    assert len(fake.specs) == 3
    assert len(outcome.results) == 2
    manifest = json.loads((outcome.folder / "experiment.json").read_text())
    assert [r["status"] for r in manifest["runs"]] == ["ok", "ok", "interrupted", "pending"]


def test_unknown_allocator_fails_before_any_run(tmp_path: Path) -> None:
    fake = FakeRuns()
    with pytest.raises(AllocatorError, match=r"^unknown allocator 'jemaloc'"):
        run(tmp_path, "allocators: [glibc, jemaloc]\n", fake)
    assert fake.specs == []
    assert not (tmp_path / "out").exists()


def test_a_run_that_cannot_start_is_recorded_and_the_rest_go_on(tmp_path: Path) -> None:
    fake = FakeRuns({1: "raise-server-error"})

    outcome = run(tmp_path, EXPERIMENT, fake)

    assert len(fake.specs) == 4
    assert len(outcome.results) == 3
    assert outcome.failures == [
        "glibc-arena2 repeat 1: the server did not answer /health within 30 s"
    ]
    manifest = json.loads((outcome.folder / "experiment.json").read_text())
    assert [r["status"] for r in manifest["runs"]] == ["ok", "failed", "ok", "ok"]


def test_a_baseline_that_matches_no_group_fails_before_any_run(tmp_path: Path) -> None:
    fake = FakeRuns()
    with pytest.raises(ConfigError) as info:
        run(tmp_path, EXPERIMENT + "baseline: glibc sleep_ms=0\n", fake)
    assert str(info.value).endswith(
        "baseline has value 'glibc sleep_ms=0'; expected one of: glibc, glibc-arena2"
    )
    assert fake.specs == []


def test_report_writes_comparison_plots_and_the_page(tmp_path: Path) -> None:
    outcome = run(tmp_path, EXPERIMENT, FakeRuns())
    for result in outcome.results:
        dump(result, outcome.folder / f"{result.run_id}.json")

    table, plots = execution.report(outcome, baseline="glibc")

    assert "glibc-arena2" in table and "× glibc" in table
    assert (outcome.folder / "comparison.md").read_text().startswith("**")
    assert json.loads((outcome.folder / "comparison.json").read_text())["baseline"] == "glibc"
    assert {p.name for p in plots} >= {"rss.png", "rss-allocator.png", "rss-requests.png"}
    page = (outcome.folder / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "glibc-arena2" in page
    assert f"sandbox experiment {tmp_path / 'exp.yml'}" in page


@pytest.mark.parametrize("name", sorted(config.SETTINGS))
def test_every_setting_in_an_experiment_rejects_a_wrong_type(tmp_path: Path, name: str) -> None:
    key = config.SETTINGS[name].key
    section, _, leaf = key.rpartition(".")
    value = "[1, 2]" if name != "tags" else "{a: 1}"  # a list (or a mapping) fits no setting
    path = write(tmp_path, f"{section}:\n  {leaf}: {value}\n" if section else f"{leaf}: {value}\n")
    message = error_of(path)
    assert message.startswith(f"{path}: {key} has value ") and "\n" not in message


def test_an_unknown_setting_in_an_experiment_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "run:\n  lod: rate\n")
    assert error_of(path).startswith(f"{path}: unknown key 'run.lod' (did you mean 'load'?)")
