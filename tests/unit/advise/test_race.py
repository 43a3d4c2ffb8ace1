"""The race loop with a fake run (synthetic results with known answers): rounds, drops, the stop
at separation and at the budget, race.json, resuming an interrupted race; the plan's arms, the
catalogue, the deploy lines and the note."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from sandbox.advise import catalogue, deploy, plan, race, render, state
from sandbox.advise.state import RaceSettings
from sandbox.allocators import host_cores
from sandbox.config import settings as config
from sandbox.config.run_spec import RunSpec
from sandbox.errors import ConfigError
from sandbox.load.models import LoadModel
from sandbox.results.files import dump
from sandbox.results.model import RunResult
from sandbox.results.sampling import AgentProcess, PeriodicTrim
from tests.fakes import fixed_run

REPO = Path(__file__).resolve().parents[3]
NOISE = (0.99, 1.01, 1.0, 0.995, 1.005, 1.0, 0.99, 1.01)


class FakeRuns:
    """Each arm's after-idle RSS is `levels[arm]` MiB (±1 %); each run takes `run_s` on the
    fake clock; the call numbered `interrupt_at` raises KeyboardInterrupt."""

    def __init__(
        self,
        levels: Mapping[str, float],
        run_s: float = 30.0,
        interrupt_at: int | None = None,
        soak_served: Mapping[str, int] | None = None,
    ) -> None:
        self.levels = levels
        self.soak_served = soak_served
        """Under a time-bounded load (soak): the requests each arm's batches serve."""
        self.run_s = run_s
        self.interrupt_at = interrupt_at
        self.now = 0.0
        self.calls: list[tuple[str, int]] = []

    def clock(self) -> float:
        return self.now

    def __call__(self, spec: RunSpec, index: int, total: int) -> tuple[RunResult, Path]:
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            self.interrupt_at = None
            raise KeyboardInterrupt
        self.calls.append((spec.allocator, spec.repeat))
        self.now += self.run_s
        level = self.levels[spec.allocator] * NOISE[spec.repeat % len(NOISE)]
        result = fixed_run(
            spec.allocator,
            level,
            repeat=spec.repeat,
            experiment=spec.experiment,
            parameters=dict(spec.parameters),
        )
        if self.soak_served is not None:
            served = self.soak_served[spec.allocator]
            stats = [replace(b, requests=served) for b in result.load.stats]
            soak = LoadModel("soak", users=8, duration_s=10.0)
            load = replace(result.load, spec=replace(result.load.spec, model=soak), stats=stats)
            result = replace(result, load=load)
        path = dump(result, spec.output.results_dir / f"{result.run_id}.json")
        return result, path


def settings(arms: list[str], budget_s: float = 3600.0, **kw: object) -> RaceSettings:
    chosen = [catalogue.BY_NAME[a] for a in arms]
    base = RaceSettings(
        name="advise",
        arms=tuple(chosen),
        skipped=(),
        overrides={"iterations": 5, "host_cores": 8},
        budget_s=budget_s,
        tolerance=0.05,
        min_rounds=2,
        max_rounds=12,
        seed=0,
        workload="test",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def bench() -> config.Benchmark:
    return config.load_benchmark(REPO / "benchmark.yml")


def race_of(
    fake: FakeRuns, results_dir: Path, arms: list[str], budget_s: float = 3600.0, **kw: object
) -> race.RaceOutcome:
    """A race of `arms` on the fake runs, on the fake's clock."""
    chosen = settings(arms, budget_s, **kw)
    return race.start_race(chosen, bench(), fake, results_dir=results_dir, clock=fake.clock)


def test_the_race_drops_the_clearly_worse_and_stops_when_the_best_is_separated(
    tmp_path: Path,
) -> None:
    fake = FakeRuns({"glibc": 200, "jemalloc": 100, "mimalloc": 150})

    out = race_of(fake, tmp_path, ["glibc", "jemalloc", "mimalloc"])

    assert len(out.state.rounds) == 2
    assert out.state.stopped == "jemalloc is separated from every other arm"
    assert set(out.state.rounds[1].dropped) == {"glibc", "mimalloc"}
    assert out.state.rounds[0].dropped == {}
    assert sorted(fake.calls) == sorted(
        (a, r) for a in ("glibc", "jemalloc", "mimalloc") for r in (0, 1)
    )
    saved = json.loads((out.folder / "race.json").read_text())
    assert saved["stopped"] == out.state.stopped
    assert [r["arms"] for r in saved["rounds"]] == [list(r.arms) for r in out.state.rounds]
    m = json.loads((out.folder / "experiment.json").read_text())
    assert [e["status"] for e in m["runs"]] == ["ok"] * 6
    assert {json.dumps(e["parameters"]) for e in m["runs"]} == {'{"host_cores": 8}'}


def test_the_race_stops_before_a_round_would_overrun_the_budget(tmp_path: Path) -> None:
    # All three equal: nothing is ever dropped. 3 runs of 100 s a round; a budget of 700 s
    # holds two rounds (600 s) but not a third (900 s).
    fake = FakeRuns({"glibc": 100, "glibc-arena2": 100, "glibc-arena4": 100}, run_s=100)

    out = race_of(fake, tmp_path, ["glibc", "glibc-arena2", "glibc-arena4"], budget_s=700)

    assert len(out.state.rounds) == 2
    assert out.state.stopped == (
        "the next round (about 300 s) would overrun the budget (600 of 700 s used)"
    )
    assert out.state.elapsed_s == 600


def test_dropped_arms_do_not_run_again_but_the_baseline_does(tmp_path: Path) -> None:
    levels = {"glibc": 120, "jemalloc": 100, "mimalloc": 101, "tcmalloc": 300}
    fake = FakeRuns(levels)

    out = race_of(fake, tmp_path, ["glibc", *sorted(set(levels) - {"glibc"})], max_rounds=4)

    dropped = out.state.dropped_at()
    assert dropped["tcmalloc"][0] == 2
    later = [a for a, r in fake.calls if r >= 2]
    assert "tcmalloc" not in later
    assert "glibc" in later


def test_an_interrupted_race_resumes_without_running_a_finished_run_again(
    tmp_path: Path,
) -> None:
    levels = {"glibc": 200, "jemalloc": 100, "mimalloc": 150}
    fake = FakeRuns(levels, interrupt_at=4)  # in round 2, after its first run

    first = race_of(fake, tmp_path, list(levels))

    assert first.interrupted
    assert first.state.stopped is None
    assert len(fake.calls) == 4
    again = race.resume_race(first.folder, bench(), fake, clock=fake.clock)

    assert not again.interrupted
    assert again.state.stopped == "jemalloc is separated from every other arm"
    assert len(fake.calls) == 6  # the two runs round 2 had left
    assert sorted(fake.calls) == sorted((a, r) for a in levels for r in (0, 1))
    assert state.load(first.folder).stopped == again.state.stopped


def test_the_note_ranks_the_arms_and_ends_with_the_winners_deploy_lines(tmp_path: Path) -> None:
    fake = FakeRuns({"glibc": 200, "jemalloc": 100, "mimalloc": 150})
    out = race_of(fake, tmp_path, ["glibc", "jemalloc", "mimalloc"])

    text = render.note(out)

    rows = [line for line in text.splitlines() if line.startswith("| ") and "rank" not in line]
    assert [row.split(" | ")[1] for row in rows] == ["jemalloc", "mimalloc", "glibc"]
    assert rows[0].endswith("| WINNER |")
    assert "| 0.50 [" in rows[0]
    assert "- mimalloc: after round 2: after-idle RSS 1.50 [" in text
    assert "Winner: jemalloc: jemalloc 5 instead of glibc malloc (LD_PRELOAD)." in text
    assert "  RUN apt-get update && apt-get install -y --no-install-recommends libjemalloc2" in text
    assert f"- {host_cores.CANNOT_EMULATE}" in text
    assert text.rstrip().endswith("before you deploy")
    assert (
        "\nStair read per arm:\nglibc host_cores=8: the stair read over 3 batches (2 runs;" in text
    )


def test_the_note_says_when_a_time_bounded_load_served_the_arms_unevenly(
    tmp_path: Path,
) -> None:
    levels = {"glibc": 200, "jemalloc": 100}
    for served, said in (
        ({"glibc": 3000, "jemalloc": 1500}, True),
        (dict.fromkeys(levels, 3000), False),
    ):
        fake = FakeRuns(levels, soak_served=served)
        out = race_of(fake, tmp_path / str(said), list(levels))
        text = render.note(out)
        assert ("served different numbers of requests" in text) is said
        if said:
            assert (
                "Note: jemalloc host_cores=8 and glibc host_cores=8 served different numbers of "
                "requests under a time-bounded load (4,500 and 9,000 a run, medians)"
            ) in text


def test_deploy_lines_of_a_tuned_jemalloc() -> None:
    arm = replace(catalogue.BY_NAME["jemalloc-tuned"], library="/opt/lib/libjemalloc.so.2")
    conf = "background_thread:true,dirty_decay_ms:5000,muzzy_decay_ms:5000"

    assert deploy.lines(arm) == [
        "Dockerfile:",
        "  RUN apt-get update && apt-get install -y --no-install-recommends libjemalloc2 "
        "&& rm -rf /var/lib/apt/lists/*",
        '  ENV LD_PRELOAD="/opt/lib/libjemalloc.so.2"',
        f'  ENV MALLOC_CONF="{conf}"',
        "systemd unit ([Service]):",
        '  Environment="LD_PRELOAD=/opt/lib/libjemalloc.so.2"',
        f'  Environment="MALLOC_CONF={conf}"',
        "Kubernetes (container spec):",
        "  env:",
        "    - name: LD_PRELOAD",
        '      value: "/opt/lib/libjemalloc.so.2"',
        "    - name: MALLOC_CONF",
        f'      value: "{conf}"',
    ]


def test_the_periodic_trim_deploys_as_code_not_as_the_agents_variable() -> None:
    lines = deploy.lines(catalogue.BY_NAME["glibc-trim5s"])

    assert not any(catalogue.TRIM_EVERY_ENV in line for line in lines)
    assert any(line.strip().startswith("libc.malloc_trim(0)") for line in lines)
    assert lines[0] == "In the service, at start-up (Python):"


def test_the_catalogue_has_at_least_ten_documented_arms() -> None:
    assert len(catalogue.ARMS) >= 10
    assert len(set(catalogue.BY_NAME)) == len(catalogue.ARMS)
    assert all(a.changes for a in catalogue.ARMS)
    listing = plan.listing()
    assert all(f"\n{a.name}\n" in f"\n{listing}" for a in catalogue.ARMS)


def test_worker_recycling_is_skipped_unless_the_command_runs_gunicorn() -> None:
    arm = catalogue.BY_NAME["gunicorn-recycle"]

    assert arm.skip_reason(None) == (
        "gunicorn-recycle: skipped: worker recycling needs a --cmd that runs gunicorn "
        "(it adds --max-requests to gunicorn's command line)"
    )
    assert arm.skip_reason("gunicorn app:app -b {host}:{port}") is None
    kept, skipped = plan.arms(["glibc", "gunicorn-recycle", "glibc-arena2"], bench(), None)
    assert [a.name for a in kept] == ["glibc", "glibc-arena2"]
    assert skipped == [arm.skip_reason(None)]


def test_the_baseline_is_added_first_and_an_unknown_arm_is_named() -> None:
    kept, _ = plan.arms(["glibc-arena2"], bench(), None)
    assert [a.name for a in kept] == ["glibc", "glibc-arena2"]
    with pytest.raises(ConfigError, match="--arms: unknown arm 'jemaloc'; choose among: glibc,"):
        plan.arms(["jemaloc"], bench(), None)


def test_a_benchmark_allocator_is_an_arm(tmp_path: Path) -> None:
    b = replace(
        bench(),
        allocators={
            "mine": config.read_allocators("b.yml", {"mine": {"env": {"MALLOC_ARENA_MAX": 3}}})[
                "mine"
            ]
        },
    )

    kept, _ = plan.arms(["mine"], b, None)

    assert kept[1].name == "mine"
    assert dict(kept[1].env) == {"MALLOC_ARENA_MAX": "3"}


def test_the_workload_defaults_to_quick_for_the_stair_stepper_only() -> None:
    quick, where, _ = plan.workload(None, {"host_cores": 8})
    assert quick["iterations"] == 30 and quick["host_cores"] == 8
    assert where == "the settings of quick.yml with flags host_cores=8"
    own, _, _ = plan.workload(None, {"app": "examples.cache_service.app:app"})
    assert own == {"app": "examples.cache_service.app:app"}


def test_race_json_round_trips(tmp_path: Path) -> None:
    s = settings(["glibc", "jemalloc-tuned"])
    r = state.Round(0, ("jemalloc-tuned", "glibc"), (0, 1), 12.5, True, "jemalloc-tuned", {}, {})
    st = state.RaceState(s, (r,), None)

    state.save(st, tmp_path)

    assert state.load(tmp_path) == st


def test_a_winners_cost_its_interval_still_allows_is_a_caveat() -> None:
    s = settings(["glibc", "jemalloc"])
    race_state = state.RaceState(s, (), None)
    figures = {
        "glibc": {"throughput_rps": [100.0, 101.0, 99.0], "p95_ms": [200.0, 202.0, 198.0]},
        "jemalloc": {"throughput_rps": [60.0, 110.0, 90.0], "p95_ms": [200.0, 201.0, 199.0]},
    }

    lines = render.not_ruled_out(race_state, figures, "jemalloc")

    assert len(lines) == 1
    assert lines[0].startswith("a throughput cost of more than 5% is not ruled out (0.84 [")
    assert render.not_ruled_out(race_state, figures, "glibc") == []


def test_the_note_tells_each_arms_periodic_trims_over_its_runs() -> None:
    def run(repeat: int, trims: PeriodicTrim | None) -> RunResult:
        base = fixed_run("glibc-trim5s", 100.0, repeat=repeat)
        seen = [AgentProcess("main", 10, "python3", True, 20, periodic_trim=trims)]
        return replace(base, sampler=replace(base.sampler, agents=seen))

    runs = [
        run(0, PeriodicTrim(5.0, 4, "malloc_trim(0)", 100.0, 60.0, 2.0)),
        run(1, PeriodicTrim(5.0, 6, "malloc_trim(0)", 50.0, 156.3, 1.0)),
        fixed_run("glibc", 200.0),
    ]
    assert render.periodic_trims(runs) == [
        "- glibc-trim5s: 10 trims (malloc_trim(0), every 5 s in 2 runs), each 15.0 ms on "
        "average, longest 156.3 ms"
    ]
    assert render.periodic_trims([fixed_run("glibc", 200.0)]) == []
    assert PeriodicTrim.combined([PeriodicTrim(5.0)]) is None  # set up, no trim made yet


def test_with_no_arm_clearly_below_the_baseline_there_is_nothing_to_deploy(
    tmp_path: Path,
) -> None:
    fake = FakeRuns({"glibc": 100, "jemalloc": 99.5, "mimalloc": 101})
    out = race_of(fake, tmp_path, ["glibc", "jemalloc", "mimalloc"], max_rounds=3)

    text = render.note(out)

    assert (
        "No remedy is clearly better than glibc: the best, jemalloc, has after-idle RSS 0.99 ["
        in (text)
    )
    assert "Nothing to deploy on this evidence" in text
    assert "Deploy it:" not in text and "ENV LD_PRELOAD" not in text
