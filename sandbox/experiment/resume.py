"""Resuming an experiment (`sandbox experiment --resume DIR`): the plan comes from the manifest's
copy of the experiment file, so the runs left are run in the original order with the original
seed; a file or benchmark.yml that would change what the runs do is refused, naming what
changed; and what each planned run became is read from the folder itself, so that a manifest a
killed harness left one step behind still tells done from incomplete.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sandbox.allocators import registry as allocators
from sandbox.config.settings import Benchmark
from sandbox.errors import ConfigError, ResultFormatError
from sandbox.experiment import manifest
from sandbox.experiment.definition import Experiment, load_experiment, plan_runs
from sandbox.experiment.manifest import KEPT, Attempt, Entry, Manifest, plain, run_key
from sandbox.results import checkpoints
from sandbox.results import files as result_files
from sandbox.results.model import RunResult
from sandbox.system import atomic


def experiment_fields(exp: Experiment) -> dict[str, Any]:
    """What an experiment file decides about its runs (not its description)."""
    fields: dict[str, Any] = plain(
        {
            "name": exp.name,
            "allocators": exp.allocators,
            "repeats": exp.repeats,
            "order": exp.order,
            "seed": exp.seed,
            "baseline": exp.baseline,
            "vary": dict(exp.vary),
            **({"cases": [dict(c) for c in exp.cases]} if exp.cases else {}),
            **{f"overrides.{k}": v for k, v in exp.overrides.items()},
            **{f"custom_allocators.{k}": asdict(a) for k, a in exp.custom_allocators.items()},
        }
    )
    return fields


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """`key old -> new` for every key whose value differs (as JSON holds them)."""

    def shown(key: str, side: Mapping[str, Any]) -> str:
        return json.dumps(side[key]) if key in side else "(unset)"

    differ = [k for k in sorted(set(old) | set(new)) if plain(old.get(k)) != plain(new.get(k))]
    return [f"{k} {shown(k, old)} -> {shown(k, new)}" for k in differ]


def shared(bench: Benchmark, exp: Experiment) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings the runs share, and the allocators' definitions, under this benchmark."""
    registry = allocators.registry({**bench.allocators, **exp.custom_allocators})
    return (
        manifest.shared_settings(bench.values, exp.overrides),
        manifest.allocator_definitions(registry, exp.allocators),
    )


def original_experiment(
    m: Manifest, folder: Path, bench: Benchmark
) -> tuple[Experiment, list[str]]:
    """The experiment as it began, from the manifest's copy of its file; ConfigError (exit 2)
    naming what changed when the file or benchmark.yml now says otherwise. Returns notes."""
    if m.file is None or m.file_text is None:
        raise ConfigError(
            f"{folder / manifest.NAME} holds no copy of its experiment file; run it anew"
        )
    path = Path(m.file)
    original = load_experiment(path, m.file_text)
    notes: list[str] = []
    in_file: list[str] = []
    if not path.is_file():
        notes.append(f"{path} is gone; resuming from its copy in {folder / manifest.NAME}")
    elif manifest.sha256(path.read_text()) != m.file_sha256:
        in_file = changes(experiment_fields(original), experiment_fields(load_experiment(path)))
        if not in_file:
            notes.append(f"{path} changed in comments or layout only; resuming as planned")
    settings, definitions = shared(bench, original)
    in_bench = changes(m.settings, settings) + changes(m.allocator_definitions, definitions)
    if in_file or in_bench:
        bench_name = str(bench.path) if bench.path else "the default settings"
        what = " and ".join(
            name for name, found in ((str(path), in_file), (bench_name, in_bench)) if found
        )
        raise ConfigError(
            f"{what} changed since {folder} began: {', '.join([*in_file, *in_bench])}; "
            "put it back as it was, or run the experiment anew without --resume"
        )
    return original, notes


def check_plan(m: Manifest, exp: Experiment, folder: Path) -> None:
    """The manifest's runs must be the plan its experiment file makes (order, seed, repeats)."""
    planned = plan_runs(replace(exp, repeats=m.repeats))
    expected = [run_key(p.allocator, p.repeat, p.parameters) for p in planned]
    in_order = [e.index for e in m.runs] == list(range(len(m.runs)))
    if expected != [e.key for e in m.runs] or not in_order:
        raise ResultFormatError(
            f"{folder / manifest.NAME}: its runs are not the plan of {m.file} (edited by hand?); "
            "run the experiment anew"
        )


@dataclass(frozen=True)
class Found:
    """A result file in the experiment's folder."""

    path: Path
    result: RunResult

    @property
    def key(self) -> str:
        r = self.result
        return run_key(r.allocator.name, r.repeat, r.parameters)

    @property
    def final(self) -> bool:
        """A finished run's result (not a checkpoint) with a status that makes it done."""
        return self.result.status in KEPT and not checkpoints.is_partial(self.path)


def found_in(folder: Path) -> tuple[dict[str, list[Found]], list[str]]:
    """The folder's result files by planned run, oldest first; and notes on unreadable ones."""
    by_key: dict[str, list[Found]] = {}
    notes: list[str] = []
    for path in result_files.find_result_files([folder]):
        try:
            found = Found(path, result_files.load(path))
        except result_files.NotAResultError:
            continue
        except ResultFormatError as exc:
            notes.append(f"ignored {exc}")
            continue
        by_key.setdefault(found.key, []).append(found)
    for files in by_key.values():
        files.sort(key=lambda f: (f.result.started_at, f.result.run_id))
    return by_key, notes


def reconcile(m: Manifest, folder: Path) -> tuple[Manifest, list[str]]:
    """Each planned run as the folder has it: a result the manifest did not get to record (the
    harness died after writing it) is taken; a checkpoint it never named becomes the run's last
    attempt; a recorded result that is gone makes the run incomplete."""
    by_key, notes = found_in(folder)
    for entry in m.runs:
        files = by_key.get(entry.key, [])
        named = {entry.file, *(a.file for a in entry.superseded)}
        recorded = next((f for f in files if f.path.name == entry.file), None)
        if entry.done and recorded is not None:
            continue
        if entry.done:
            notes.append(
                f"{entry.file}, the result of run {entry.index + 1}, is gone; it runs again"
            )
            entry = replace(entry, status="failed", error=f"its result {entry.file} is gone")
        if not entry.done and entry.fallback:
            entry, said = _take_back(entry, folder)
            notes += said
            if entry.done:
                m = m.with_entry(entry)
                continue
        finals = [f for f in files if f.final]
        if finals:
            taken = finals[-1]
            notes.append(
                f"run {entry.index + 1} ended {taken.result.status} in {taken.path.name} before "
                "its harness could record it; it counts as done"
            )
            entry = _current(entry, taken)
        else:
            for f in (f for f in files if f.path.name not in named):
                entry = _current(entry, f)  # the newest becomes the run's last attempt
        if entry.status == "running":  # no harness runs it (resume holds the folder's lock)
            entry = replace(
                entry, status="harness-died", error="the harness died before a checkpoint"
            )
        m = m.with_entry(entry)
    return m, notes


def _take_back(entry: Entry, folder: Path) -> tuple[Entry, list[str]]:
    """The result a full disk sent to the fallback folder, moved back into the experiment's."""
    spare = Path(entry.fallback or "")
    try:
        result = result_files.load(spare)
        atomic.write_atomic(folder / spare.name, spare.read_bytes())
    except (ResultFormatError, OSError) as exc:
        return replace(entry, fallback=None), [f"run {entry.index + 1}: {spare} not taken ({exc})"]
    spare.unlink(missing_ok=True)
    entry = replace(
        entry,
        status=result.status,
        run_id=result.run_id,
        file=spare.name,
        error=None,
        fallback=None,
    )
    return entry, [f"run {entry.index + 1}: took its result back from {spare} into {spare.name}"]


def _current(entry: Entry, found: Found) -> Entry:
    """`found` as the entry's latest attempt; what the entry held before, if anything, goes to
    its earlier attempts."""
    earlier = entry.superseded
    if entry.run_id is not None or entry.file is not None:
        earlier = (*earlier, entry.attempt())
    elif entry.status not in ("pending", "running"):
        earlier = (*earlier, Attempt(entry.status, error=entry.error))
    return replace(
        entry,
        status=found.result.status,
        run_id=found.result.run_id,
        file=found.path.name,
        error=None,
        superseded=earlier,
    )


def prepare(folder: Path, bench: Benchmark) -> tuple[Manifest, Experiment, list[str]]:
    """The manifest of `folder` made current, the experiment as it began, and notes for the
    terminal (checkpoints marked, results taken, files changed in ways that do not matter)."""
    m = manifest.load(folder)
    exp, notes = original_experiment(m, folder, bench)
    check_plan(m, exp, folder)
    notes += [s.describe() for s in checkpoints.settle([folder])]
    m, found = reconcile(m, folder)
    return m, replace(exp, repeats=m.repeats), notes + found
