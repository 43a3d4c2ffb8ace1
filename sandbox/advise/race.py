"""The race: arms run in interleaved rounds, each run a fresh server, through the experiment
machinery (experiment.execute: the manifest written around every run, the folder locked);
after each round `rules.decide` drops the arms clearly worse than the best, and the race stops
when the best is separated, when the next round would overrun the budget, or at max_rounds.
race.json (`state`) records the rounds, so that an interrupted race resumes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sandbox.advise import rules, state
from sandbox.advise.state import RaceSettings, RaceState, Round
from sandbox.analysis.metrics import METRICS
from sandbox.config import settings as config
from sandbox.config.settings import Benchmark
from sandbox.experiment import manifest
from sandbox.experiment.definition import Experiment
from sandbox.experiment.execution import NoteFn, execute, output_folder
from sandbox.experiment.manifest import Entry, Manifest, plain
from sandbox.experiment.side_by_side import RunFn
from sandbox.measure.record import utc_now
from sandbox.results import checkpoints
from sandbox.results.conditions import running_harness
from sandbox.results.model import RunResult

Clock = Callable[[], float]
FIGURES = ("after_idle_rss_mib", "peak_rss_mib", "throughput_rps", "p95_ms")
"""The metrics the race decides on and shows."""


@dataclass
class RaceOutcome:
    folder: Path
    state: RaceState
    results: list[RunResult]
    interrupted: bool = False
    failures: list[str] = field(default_factory=list)


def figures_of(results: Sequence[RunResult]) -> dict[str, dict[str, list[float]]]:
    """Arm -> metric -> the values of its runs that finished ok, in run order."""
    by_key = {m.key: m for m in METRICS}
    out: dict[str, dict[str, list[float]]] = {}
    for r in results:
        if r.status != "ok":
            continue
        arm = out.setdefault(r.allocator.name, {k: [] for k in FIGURES})
        for key in FIGURES:
            value = by_key[key].extract(r)
            if value is not None:
                arm[key].append(value)
    return out


def experiment_of(settings: RaceSettings) -> Experiment:
    """The race as the experiment machinery sees it: its arms are allocators."""
    return Experiment(
        name=settings.name,
        description=f"sandbox advise: {len(settings.arms)} arms, {settings.workload}",
        allocators=tuple(a.name for a in settings.arms),
        repeats=settings.max_rounds,
        order="interleaved",
        seed=settings.seed,
        baseline=settings.baseline,
        overrides=dict(settings.overrides),
        custom_allocators={a.name: a.allocator() for a in settings.arms},
    )


def _bench_with_arms(bench: Benchmark, exp: Experiment) -> Benchmark:
    return replace(bench, allocators={**bench.allocators, **exp.custom_allocators})


def _new_manifest(settings: RaceSettings, exp: Experiment, bench: Benchmark) -> Manifest:
    return Manifest(
        name=settings.name,
        description=exp.description,
        file=None,
        file_text=None,
        file_sha256=None,
        benchmark=str(bench.path) if bench.path else None,
        allocators=list(exp.allocators),
        repeats=settings.max_rounds,
        order="interleaved",
        seed=settings.seed,
        baseline=settings.baseline,
        vary={},
        overrides=plain(dict(exp.overrides)),
        settings=manifest.shared_settings(bench.values, exp.overrides),
        allocator_definitions=manifest.allocator_definitions(
            {a.name: a.allocator() for a in settings.arms}, exp.allocators
        ),
        runs=(),
        started_at=utc_now(),
        side_by_side=settings.side_by_side,
    )


def _parameters(settings: RaceSettings) -> dict[str, Any]:
    """What build_spec puts in every run's parameters (so that result files match entries)."""
    cores = settings.overrides.get("host_cores")
    return {"host_cores": cores} if cores is not None else {}


def round_order(arms: Sequence[str], seed: int, index: int) -> list[str]:
    """The round's arms in a seeded order of their own (every round a different one)."""
    order = list(arms)
    random.Random(seed * 1_000_003 + index).shuffle(order)
    return order


def start_race(
    settings: RaceSettings,
    bench: Benchmark,
    run: RunFn,
    *,
    results_dir: Path | None = None,
    on_note: NoteFn | None = None,
    clock: Clock = time.monotonic,
) -> RaceOutcome:
    exp = experiment_of(settings)
    bench = _bench_with_arms(bench, exp)
    first = config.build_spec(bench, exp.overrides)
    folder = output_folder(results_dir or first.output.results_dir, settings.name)
    with manifest.lock(folder):
        m = _new_manifest(settings, exp, bench)
        manifest.save(m, folder)
        race = RaceState(settings)
        state.save(race, folder)
        return _loop(race, m, exp, bench, folder, run, on_note or (lambda _: None), clock)


def resume_race(
    folder: Path,
    bench: Benchmark,
    run: RunFn,
    *,
    on_note: NoteFn | None = None,
    clock: Clock = time.monotonic,
) -> RaceOutcome:
    from sandbox.experiment import resume

    note = on_note or (lambda _: None)
    race = state.load(folder)
    manifest.load(folder)
    with manifest.lock(folder):
        for settled in checkpoints.settle([folder]):
            note(f"note: {settled.describe()}")
        m, notes = resume.reconcile(manifest.load(folder), folder)
        for line in notes:
            note(f"note: {line}")
        exp = experiment_of(race.settings)
        if race.stopped is not None:
            note(f"{folder}: the race already stopped ({race.stopped})")
            return _outcome(folder, race, m, interrupted=False)
        done = len(race.rounds) - (0 if not race.rounds or race.rounds[-1].decided else 1)
        note(f"resuming {folder}: {done} rounds decided, {race.elapsed_s:.0f} s of the budget used")
        return _loop(race, m, exp, _bench_with_arms(bench, exp), folder, run, note, clock)


def _open_round(race: RaceState, m: Manifest) -> tuple[RaceState, Manifest, Round]:
    """The next round: every live arm once, appended to the manifest as pending runs."""
    index = len(race.rounds)
    arms = round_order(race.live(), race.settings.seed, index)
    params = _parameters(race.settings)
    entries = tuple(Entry(len(m.runs) + i, a, index, params) for i, a in enumerate(arms))
    r = Round(index, tuple(arms), tuple(e.index for e in entries))
    return race.with_round(r), replace(m, runs=m.runs + entries), r


def _loop(
    race: RaceState,
    m: Manifest,
    exp: Experiment,
    bench: Benchmark,
    folder: Path,
    run: RunFn,
    note: NoteFn,
    clock: Clock,
) -> RaceOutcome:
    s = race.settings
    while True:
        last = race.rounds[-1] if race.rounds else None
        if last is None or last.decided:
            race, m, r = _open_round(race, m)
            manifest.save(replace(m, harness=running_harness()), folder)
            state.save(race, folder)
            note(f"\nround {r.index + 1}: {', '.join(r.arms)}")
        else:
            r = last
            note(f"\nround {r.index + 1} (resumed): {', '.join(r.arms)}")
        started = clock()
        outcome = execute(m, exp, bench, folder, run, _without_skips(note))
        r = replace(r, elapsed_s=r.elapsed_s + clock() - started)
        m = manifest.load(folder)
        if outcome.interrupted:
            race = race.with_round(r)
            state.save(race, folder)
            return _outcome(folder, race, m, interrupted=True, results=outcome.results)
        figures = figures_of(outcome.results)
        decision = rules.decide(
            figures,
            r.arms,
            s.baseline,
            r.index + 1,
            tolerance=s.tolerance,
            min_rounds=s.min_rounds,
        )
        gone = race.dropped_at()
        new = {a: why for a, why in decision.dropped.items() if a not in gone}
        r = replace(
            r,
            decided=True,
            best=decision.best,
            dropped=new,
            not_recommended=dict(decision.not_recommended),
        )
        race = race.with_round(r)
        for arm, why in new.items():
            kept = " (kept running: the baseline)" if arm == s.baseline else ""
            note(f"dropped {arm} after round {r.index + 1}: {why}{kept}")
        all_dropped = list(race.dropped_at())
        run_seconds = [x.elapsed_s / len(x.runs) for x in race.rounds if x.runs and x.elapsed_s]
        why_stop = rules.stop_reason(
            is_separated=rules.separated(r.arms, decision.best, all_dropped),
            best=decision.best,
            elapsed_s=race.elapsed_s,
            budget_s=s.budget_s,
            estimate_s=rules.next_round_s(run_seconds, len(race.live())),
            rounds_done=r.index + 1,
            max_rounds=s.max_rounds,
        )
        if why_stop is not None:
            race = replace(race, stopped=why_stop)
        state.save(race, folder)
        if why_stop is not None:
            note(f"the race stops: {why_stop}")
            return _outcome(folder, race, m, interrupted=False, results=outcome.results)


def _without_skips(note: NoteFn) -> NoteFn:
    """execute's notes without its `skip` line for every run of the rounds before."""
    return lambda line: None if line.startswith("skip ") else note(line)


def _outcome(
    folder: Path,
    race: RaceState,
    m: Manifest,
    *,
    interrupted: bool,
    results: list[RunResult] | None = None,
) -> RaceOutcome:
    from sandbox.errors import ResultFormatError
    from sandbox.results import files as result_files

    out = RaceOutcome(folder, race, [], interrupted)
    if results is not None:
        out.results = results
    else:
        for entry in m.runs:
            if entry.file is None:
                continue
            try:
                out.results.append(result_files.load(folder / entry.file))
            except ResultFormatError as exc:
                out.failures.append(str(exc))
    for entry in m.runs:
        if entry.error is not None:
            out.failures.append(f"{entry.allocator} round {entry.repeat + 1}: {entry.error}")
    return out


def arm_definitions(race: RaceState) -> Mapping[str, Any]:
    return {a.name: a for a in race.settings.arms}
