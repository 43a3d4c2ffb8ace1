"""Running an experiment: its runs in order, each a fresh server, a checkpoint after each, the
stopping rule's looks under `--until-verdict`, resuming one that was interrupted, and the
comparison, plots and report at the end."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from sandbox.allocators import registry as allocators
from sandbox.analysis import sequential
from sandbox.analysis.compare import compare
from sandbox.analysis.groups import choose_baseline, group_results, label, references
from sandbox.analysis.metrics import CONFIRMATORY_METRIC, METRIC_BY_KEY
from sandbox.analysis.report import render
from sandbox.config import settings as config
from sandbox.config.run_spec import RunSpec
from sandbox.config.settings import Benchmark
from sandbox.errors import ConfigError, ResultFormatError, SandboxError
from sandbox.experiment import manifest
from sandbox.experiment.definition import Experiment, PlannedRun, plan_runs
from sandbox.experiment.manifest import Entry, Manifest, plain
from sandbox.experiment.side_by_side import Finished, Job, RunFn, attempt, run_side_by_side
from sandbox.measure.record import utc_now
from sandbox.results.conditions import running_harness
from sandbox.results.model import RunResult


def report(outcome: ExperimentOutcome, baseline: str | None) -> tuple[str, list[Path]]:
    """Compare the experiment's runs, write comparison.md/.json, the plots and report.html
    beside them; returns the terminal table and the plot paths."""
    from sandbox.analysis.html import write_report
    from sandbox.analysis.plot import write_plots

    comparison = compare(outcome.results, baseline=baseline)
    try:
        (outcome.folder / "comparison.md").write_text(render(comparison, "markdown"))
        (outcome.folder / "comparison.json").write_text(render(comparison, "json"))
        plots = write_plots(outcome.results, outcome.folder / "rss")
        write_report([outcome.folder], baseline=baseline)
    except OSError as exc:
        raise SandboxError(
            f"could not write the comparison, the plots or the report to {outcome.folder} "
            f"({exc.strerror or exc}); make room, then: sandbox compare {outcome.folder}"
        ) from None
    return render(comparison, "table"), plots


def output_folder(results_dir: Path, name: str, now: datetime | None = None) -> Path:
    now = now or datetime.now(timezone.utc)
    base = results_dir / f"{name}-{now:%Y%m%dT%H%M%SZ}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


NoteFn = Callable[[str], None]


@dataclass
class ExperimentOutcome:
    folder: Path
    results: list[RunResult]
    """The latest result of every planned run that has one (earlier attempts left out)."""
    paths: list[Path]
    interrupted: bool = False
    failures: list[str] = field(default_factory=list)
    name: str = ""
    baseline: str | None = None
    stop: str = ""
    """Under `--until-verdict`: the look that stopped the experiment, in words ("" otherwise,
    or when it was interrupted before one did)."""
    stop_reason: str = ""
    """That look's reason: `decided` or `cap`."""


def _check_allocators_and_baseline(exp: Experiment, bench: Benchmark) -> list[PlannedRun]:
    """Fail before anything runs, not an hour in: every allocator found, the baseline a group."""
    for name in exp.allocators:
        allocators.resolve(name, bench.allocators)
    planned = plan_runs(exp)
    if exp.baseline is not None:
        labels = {label(p.allocator, p.parameters) for p in planned}
        names = {p.allocator for p in planned}
        if exp.baseline not in labels and exp.baseline not in names:
            raise ConfigError(
                f"{exp.path or exp.name}: baseline has value {exp.baseline!r}; expected one of: "
                + ", ".join(sorted(labels | names))
            )
    return planned


def new_manifest(
    exp: Experiment,
    bench: Benchmark,
    planned: list[PlannedRun],
    design: sequential.Design | None = None,
) -> Manifest:
    """The manifest of an experiment about to start: every planned run pending (under a
    stopping rule `design`, every run up to its cap)."""
    text = exp.path.read_text() if exp.path and exp.path.is_file() else None
    registry = allocators.registry(bench.allocators)
    return Manifest(
        name=exp.name,
        description=exp.description,
        file=str(exp.path) if exp.path else None,
        file_text=text,
        file_sha256=manifest.sha256(text) if text is not None else None,
        benchmark=str(bench.path) if bench.path else None,
        allocators=list(exp.allocators),
        repeats=exp.repeats,
        order=exp.order,
        seed=exp.seed,
        baseline=exp.baseline,
        vary=plain(dict(exp.vary)),
        overrides=plain(dict(exp.overrides)),
        settings=manifest.shared_settings(bench.values, exp.overrides),
        allocator_definitions=manifest.allocator_definitions(registry, exp.allocators),
        runs=tuple(Entry(i, p.allocator, p.repeat, p.parameters) for i, p in enumerate(planned)),
        started_at=utc_now(),
        sequential=design.to_dict() if design else None,
        side_by_side=exp.side_by_side,
    )


def run_experiment(
    exp: Experiment,
    bench: Benchmark,
    run: RunFn,
    *,
    repeats: int | None = None,
    results_dir: Path | None = None,
    on_note: NoteFn | None = None,
    design: sequential.Design | None = None,
    side_by_side: int | None = None,
) -> ExperimentOutcome:
    """Run every planned run through `run(spec, index, total)`; a failed run does not stop the
    others, an interrupt does. experiment.json (the plan and what happened) is written beside
    them at the start and around every run. With a stopping rule `design` (`--until-verdict`),
    up to `design.max_repeats` repeats are planned and the rule looks after every round from
    `design.min_repeats` on (`sandbox.analysis.sequential`); `repeats` must then be None.
    `side_by_side` overrides the experiment's runs at once."""
    if design is not None and repeats is not None:
        raise ValueError("a stopping rule decides the repeats; give max_repeats instead")
    if side_by_side is not None:
        exp = replace(exp, side_by_side=side_by_side)
    bench = replace(bench, allocators={**bench.allocators, **exp.custom_allocators})
    planned = _check_allocators_and_baseline(exp, bench)
    groups = len({label(p.allocator, p.parameters) for p in planned})
    if design is not None:
        if groups < 2:
            raise ConfigError(
                f"{exp.path or exp.name}: one group only ({label(planned[0].allocator, {})}), "
                "so --until-verdict has nothing to compare; add an allocator or a vary setting, "
                "or drop --until-verdict"
            )
        if exp.side_by_side % groups == 0:  # slots of whole rounds: look at their ends only
            design = design.for_slots(exp.side_by_side // groups)
        repeats = design.max_repeats
    if repeats is not None:
        exp = replace(exp, repeats=repeats)
        planned = plan_runs(exp)
    first = config.build_spec(bench, exp.overrides)
    folder = output_folder(results_dir or first.output.results_dir, exp.name)
    with manifest.lock(folder):
        fresh = new_manifest(exp, bench, planned, design)
        if exp.side_by_side > 1 and on_note is not None:
            on_note(
                f"side by side: {exp.side_by_side} runs at once, each a server of its own "
                "(the design assumes they see the same machine; README, Until a verdict)"
            )
        if design is not None and on_note is not None:
            on_note(design.describe(groups))
        return execute(fresh, exp, bench, folder, run, on_note)


def resume_experiment(
    folder: Path, bench: Benchmark, run: RunFn, *, on_note: NoteFn | None = None
) -> ExperimentOutcome:
    """Run what `folder`'s experiment has not finished (pending and incomplete runs), in its
    planned order; ConfigError when its experiment file or benchmark.yml changed what it runs."""
    from sandbox.experiment import resume

    manifest.load(folder)  # a folder that is no experiment's is refused before it is locked
    with manifest.lock(folder):
        m, exp, notes = resume.prepare(folder, bench)
        bench = replace(bench, allocators={**bench.allocators, **exp.custom_allocators})
        _check_allocators_and_baseline(exp, bench)
        note = on_note or (lambda _: None)
        for line in notes:
            note(f"note: {line}")
        if m.stop is not None:
            note(
                f"{folder}: its stopping rule already stopped it "
                f"({m.stop.get('summary', 'after a look')}); nothing left to run"
            )
        else:
            done = sum(e.done for e in m.runs)
            again = sum(not e.done and e.status != "pending" for e in m.runs)
            note(
                f"resuming {folder}: {done} of {len(m.runs)} runs done, {again} to run again, "
                f"{len(m.runs) - done - again} not yet run"
            )
        return execute(m, exp, bench, folder, run, on_note)


def execute(
    m: Manifest,
    exp: Experiment,
    bench: Benchmark,
    folder: Path,
    run: RunFn,
    on_note: NoteFn | None = None,
) -> ExperimentOutcome:
    """Run the manifest's runs that are not done, in order, its `side_by_side` at a time (each
    in a child process when more than one: `side_by_side`), saving it around each slot (the caller
    holds the folder's lock). The stopping rule looks after each slot at every round the slot
    finished, on the runs of the rounds up to that one only."""
    note = on_note or (lambda _: None)
    total = len(m.runs)
    interrupted = False
    fresh: dict[str, RunResult] = {}
    design = sequential.Design.from_dict(m.sequential) if m.sequential else None
    m = replace(m, harness=running_harness())
    manifest.save(_stamped(m), folder)
    for slot in _slots(m.runs, m.side_by_side):
        if m.stop is not None:
            break
        todo: list[Entry] = []
        for entry in (m.runs[i] for i in slot):
            name = f"[{entry.index + 1}/{total}] {label(entry.allocator, entry.parameters)}"
            name += f" (repeat {entry.repeat + 1})"
            if entry.done:
                note(f"skip  {name}: {entry.status} in {entry.file}")
                continue
            if entry.status != "pending":
                was = f" ({entry.file})" if entry.file else ""
                note(f"rerun {name}: it was {entry.status}{was}")
            todo.append(entry.started())
            m = m.with_entry(todo[-1])
        if todo:
            manifest.save(_stamped(m), folder)
            jobs = [Job(_spec_of(e, exp, bench, folder), e.index, total) for e in todo]
            finished: list[tuple[Finished, RunResult | None]]
            if len(jobs) == 1:
                finished = [attempt(run, jobs[0])]
            else:
                names = ", ".join(f"[{e.index + 1}/{total}]" for e in todo)
                note(f"side by side: {names}")
                apart, interrupted = run_side_by_side(run, jobs)
                finished = [(done, None) for done in apart]
            full: str | None = None
            for entry, (done, result) in zip(todo, finished, strict=True):
                ended = _entry_of(entry, done, result, fresh)
                m = m.with_entry(ended)
                interrupted |= ended.status == "interrupted"
                full = done.error if done.kind == "write-failed" else full
            manifest.save(_stamped(m), folder)
            if full is not None:
                raise SandboxError(
                    f"{full}; the experiment stops: make room in {folder}, then continue with: "
                    f"sandbox experiment --resume {folder}"
                )
            if interrupted:
                break
        if design is not None:
            for entry in (m.runs[i] for i in slot):
                if m.stop is None and _ends_round(m, entry):
                    m = _look_if_due(m, exp, design, folder, fresh, note, entry.repeat + 1)
                    manifest.save(_stamped(m), folder)
    return _outcome(m, exp, folder, fresh, interrupted)


def _slots(runs: Sequence[Entry], size: int) -> list[list[int]]:
    """The runs' indices in order, cut into slots of at most `size` runs still to do; a done
    run joins the slot it falls in, and done runs before the first run to do make a slot of
    their own (their looks come before anything more runs)."""
    slots: list[list[int]] = []
    current: list[int] = []
    todo = 0
    for entry in runs:
        if not entry.done:
            if todo == size or (current and todo == 0):
                slots.append(current)
                current, todo = [], 0
            todo += 1
        current.append(entry.index)
    if current:
        slots.append(current)
    return slots


def _spec_of(entry: Entry, exp: Experiment, bench: Benchmark, folder: Path) -> RunSpec:
    return config.build_spec(
        bench,
        {**exp.overrides, **entry.parameters, "allocator": entry.allocator},
        experiment=exp.name,
        repeat=entry.repeat,
        parameters=entry.parameters,
    ).with_(results_dir=folder)


def _entry_of(
    entry: Entry, done: Finished, result: RunResult | None, fresh: dict[str, RunResult]
) -> Entry:
    """The entry a run became, from what became of it (`side_by_side.attempt`); a result
    written by a child is read from its file. Each result read goes into `fresh`."""
    from sandbox.results import files as result_files

    if done.kind == "ok" and done.path is not None:
        try:
            result = result or result_files.load(done.path)
        except ResultFormatError as exc:
            return replace(entry, status="failed", error=str(exc))
        fresh[result.run_id] = result
        return replace(entry, status=result.status, run_id=result.run_id, file=done.path.name)
    if done.kind == "interrupted":
        return replace(entry, status="interrupted")
    spare = str(done.path) if done.kind == "write-failed" and done.path else None
    return replace(entry, status="failed", error=done.error, fallback=spare)


def _ends_round(m: Manifest, entry: Entry) -> bool:
    """Whether `entry` is the last planned run of its round: once it is past, every run of
    the rounds up to its own has been run or skipped (the plan runs round after round)."""
    later = m.runs[entry.index + 1 :]
    return not later or later[0].repeat != entry.repeat


def headline_values(
    runs: list[RunResult], baseline: str | None
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """The confirmatory metric of every ok run by group, and each group's reference (as
    `compare` pairs them): what the stopping rule reads."""
    extract = METRIC_BY_KEY[CONFIRMATORY_METRIC].extract
    by_label = group_results([r for r in runs if r.status == "ok"])
    if not by_label:
        return {}, {}
    values = {
        lab: [v for r in rs if (v := extract(r)) is not None and math.isfinite(v)]
        for lab, rs in by_label.items()
    }
    return values, references(by_label, choose_baseline(list(by_label), baseline))


def _look_if_due(
    m: Manifest,
    exp: Experiment,
    design: sequential.Design,
    folder: Path,
    fresh: dict[str, RunResult],
    note: NoteFn,
    rounds: int,
) -> Manifest:
    """After the last run of a round: when the design looks after `rounds` rounds (and no
    look of that round is recorded), look, print what it saw, record it, and record the stop
    if it stops. A run of the round that failed leaves its arm one value short."""
    if not design.is_look(rounds) or any(seen["rounds"] == rounds for seen in m.looks):
        return m
    runs = _outcome(m, exp, folder, fresh, False, rounds=rounds).results
    values, refs = headline_values(runs, exp.baseline)
    seen = sequential.look(values, refs, rounds, design, CONFIRMATORY_METRIC)
    for line in seen.lines(design):
        note(line)
    m = replace(m, looks=(*m.looks, seen.to_dict()))
    if seen.stop:
        summary = seen.summary(design)
        left = sum(e.status == "pending" for e in m.runs)
        if left:
            note(f"{left} planned runs not needed; they stay pending in {manifest.NAME}")
        m = replace(m, stop={"rounds": rounds, "reason": seen.reason, "summary": summary})
    return m


def _stamped(m: Manifest) -> Manifest:
    return replace(m, updated_at=utc_now())


def _outcome(
    m: Manifest,
    exp: Experiment,
    folder: Path,
    fresh: dict[str, RunResult],
    interrupted: bool,
    rounds: int | None = None,
) -> ExperimentOutcome:
    """What the experiment has now: the latest result of each planned run (of the first
    `rounds` rounds only, when given: what a look after them may see), and its failures."""
    from sandbox.results import files as result_files

    stop = m.stop or {}
    outcome = ExperimentOutcome(
        folder,
        [],
        [],
        interrupted,
        name=exp.name,
        baseline=exp.baseline,
        stop=str(stop.get("summary", "")),
        stop_reason=str(stop.get("reason", "")),
    )
    for entry in m.runs:
        if rounds is not None and entry.repeat >= rounds:
            continue
        who = f"{entry.allocator} repeat {entry.repeat + 1}"
        if entry.file is None:
            if entry.error is not None:
                outcome.failures.append(f"{who}: {entry.error}")
            continue
        path = folder / entry.file
        try:
            result = fresh.get(entry.run_id or "") or result_files.load(path)
        except ResultFormatError as exc:
            outcome.failures.append(f"{who}: {exc}")
            continue
        outcome.results.append(result)
        outcome.paths.append(path)
        if result.status not in ("ok", "interrupted"):
            outcome.failures.append(f"{result.run_id}: {result.status_detail}")
    return outcome
