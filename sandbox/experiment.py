"""Experiments: allocators × settings × repeats, interleaved, each run a fresh server.

An experiment file (experiments/NAME.yml) holds benchmark.yml's keys as overrides, plus:
  name, description, allocators (list), repeats, order (interleaved | shuffled), seed,
  baseline (group to compare against) and vary (setting -> list of values).
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sandbox import allocators, config
from sandbox.allocators import Allocator
from sandbox.analysis.compare import compare
from sandbox.analysis.groups import label
from sandbox.analysis.report import render
from sandbox.config import Benchmark
from sandbox.errors import ConfigError, SandboxError
from sandbox.results import RunResult
from sandbox.spec import RunSpec

MAX_RUNS = 10_000
"""More runs than an experiment could ever finish (each starts a server: about a minute)."""
_EXPERIMENT_KEYS = ("name", "description", "allocators", "repeats", "order", "seed", "baseline")
# Also: custom_allocators (like benchmark.yml's allocators:), vary.


@dataclass(frozen=True)
class Experiment:
    """A validated experiment file."""

    name: str
    description: str
    allocators: tuple[str, ...]
    repeats: int
    order: str
    seed: int
    baseline: str | None
    overrides: Mapping[str, Any]
    """Setting name -> value, applied on top of benchmark.yml."""
    vary: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    """Setting name -> values; every combination is a group."""
    custom_allocators: Mapping[str, Allocator] = field(default_factory=dict)
    """Allocators defined by the experiment itself (e.g. a second glibc label for A/A)."""
    path: Path | None = None


@dataclass(frozen=True)
class PlannedRun:
    allocator: str
    parameters: Mapping[str, Any]
    repeat: int


def load_experiment(path: Path) -> Experiment:
    """Read and validate an experiment file; errors name the file and key."""
    source = str(path)
    data = dict(config.read_yaml(path))
    head = {k: data.pop(k) for k in _EXPERIMENT_KEYS if k in data}
    vary_raw = data.pop("vary", None) or {}
    custom = config.read_allocators(source, data.pop("custom_allocators", None))
    # The experiment's own keys are gone from `data`; naming them lets a typo suggest them.
    overrides = config.read_settings(source, data, (*_EXPERIMENT_KEYS, "vary", "custom_allocators"))
    name = head.get("name", path.stem)
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"{source}: name has value {name!r}; expected letters, digits, - or _")
    allocs = head.get("allocators", ["glibc", "jemalloc"])
    if not isinstance(allocs, list) or not allocs or not all(isinstance(a, str) for a in allocs):
        raise ConfigError(f"{source}: allocators must be a list of allocator names")
    for a in allocs:
        config.validate(source, "allocators", "allocator", a)
    repeats = head.get("repeats", 3)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"{source}: repeats has value {repeats!r}; expected a whole number >= 1")
    order = head.get("order", "interleaved")
    if order not in ("interleaved", "shuffled"):
        raise ConfigError(f"{source}: order has value {order!r}; expected interleaved or shuffled")
    seed = head.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"{source}: seed has value {seed!r}; expected a whole number")
    if not isinstance(vary_raw, Mapping):
        raise ConfigError(f"{source}: vary must map a setting to a list of values")
    vary: dict[str, tuple[Any, ...]] = {}
    for key, values in vary_raw.items():
        if key not in config.SETTINGS:
            raise ConfigError(
                f"{source}: vary.{key} is not a setting; use a name such as sleep_ms or handler"
            )
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: vary.{key} must be a non-empty list of values")
        vary[key] = tuple(config.validate(source, f"vary.{key}", key, v) for v in values)
    runs = len(allocs) * repeats * math.prod(len(v) for v in vary.values())
    if runs > MAX_RUNS:
        raise ConfigError(
            f"{source}: {runs:,} runs planned (allocators x vary x repeats); at most "
            f"{MAX_RUNS:,}: lower repeats or vary fewer values"
        )
    baseline = head.get("baseline")
    return Experiment(
        name=name,
        description=str(head.get("description", "")),
        allocators=tuple(allocs),
        repeats=repeats,
        order=order,
        seed=seed,
        baseline=str(baseline) if baseline is not None else None,
        overrides=overrides,
        vary=vary,
        custom_allocators=custom,
        path=path,
    )


def plan_runs(exp: Experiment) -> list[PlannedRun]:
    """Every run, in execution order: each repeat round holds every group once (A B A B ...)."""
    keys = list(exp.vary)
    combos = [
        dict(zip(keys, values, strict=True)) for values in itertools.product(*exp.vary.values())
    ]
    groups = [(a, c) for c in combos for a in exp.allocators]
    rng = random.Random(exp.seed)
    order: list[PlannedRun] = []
    for r in range(exp.repeats):
        round_ = [PlannedRun(a, c, r) for a, c in groups]
        if exp.order == "shuffled":
            rng.shuffle(round_)
        order.extend(round_)
    return order


def report(outcome: ExperimentOutcome, baseline: str | None) -> tuple[str, list[Path]]:
    """Compare the experiment's runs, write comparison.md/.json, the plots and report.html
    beside them; returns the terminal table and the plot paths."""
    from sandbox import results
    from sandbox.analysis.html import write_report
    from sandbox.analysis.plot import write_plots

    comparison = compare(outcome.results, baseline=baseline)
    (outcome.folder / "comparison.md").write_text(render(comparison, "markdown"))
    (outcome.folder / "comparison.json").write_text(render(comparison, "json"))
    plots = write_plots(results.load_all([outcome.folder]), outcome.folder / "rss")
    write_report([outcome.folder], baseline=baseline)
    return render(comparison, "table"), plots


def output_folder(results_dir: Path, name: str, now: datetime | None = None) -> Path:
    now = now or datetime.now(timezone.utc)
    base = results_dir / f"{name}-{now:%Y%m%dT%H%M%SZ}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


RunFn = Callable[[RunSpec, int, int], tuple[RunResult, Path]]


@dataclass
class ExperimentOutcome:
    folder: Path
    results: list[RunResult]
    paths: list[Path]
    interrupted: bool = False
    failures: list[str] = field(default_factory=list)


def run_experiment(
    exp: Experiment,
    bench: Benchmark,
    run: RunFn,
    *,
    repeats: int | None = None,
    results_dir: Path | None = None,
) -> ExperimentOutcome:
    """Run every planned run through `run(spec, index, total)`; a failed run does not stop the
    others, an interrupt does. Writes experiment.json (the plan and what happened) beside them."""
    if repeats is not None:
        exp = replace(exp, repeats=repeats)
    bench = replace(bench, allocators={**bench.allocators, **exp.custom_allocators})
    for name in exp.allocators:  # fail before anything runs, not an hour in
        allocators.resolve(name, bench.allocators)
    planned = plan_runs(exp)
    if exp.baseline is not None:  # a typo here would only show after an hour of runs
        labels = {label(p.allocator, p.parameters) for p in planned}
        names = {p.allocator for p in planned}
        if exp.baseline not in labels and exp.baseline not in names:
            raise ConfigError(
                f"{exp.path or exp.name}: baseline has value {exp.baseline!r}; expected one of: "
                + ", ".join(sorted(labels | names))
            )
    first = config.build_spec(bench, exp.overrides)
    folder = output_folder(results_dir or first.output.results_dir, exp.name)
    outcome = ExperimentOutcome(folder, [], [])
    manifest: dict[str, Any] = {
        "format": "sandbox-experiment",
        "version": 1,
        "name": exp.name,
        "description": exp.description,
        "file": str(exp.path) if exp.path else None,
        "allocators": list(exp.allocators),
        "repeats": exp.repeats,
        "order": exp.order,
        "seed": exp.seed,
        "vary": {k: list(v) for k, v in exp.vary.items()},
        "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in exp.overrides.items()},
        "runs": [],
    }
    for i, item in enumerate(planned):
        spec = config.build_spec(
            bench,
            {**exp.overrides, **item.parameters, "allocator": item.allocator},
            experiment=exp.name,
            repeat=item.repeat,
            parameters=item.parameters,
        ).with_(results_dir=folder)
        entry: dict[str, Any] = {
            "allocator": item.allocator,
            "repeat": item.repeat,
            "parameters": dict(item.parameters),
        }
        try:
            result, path = run(spec, i, len(planned))
        except KeyboardInterrupt:
            outcome.interrupted = True
            entry["status"] = "interrupted"
            manifest["runs"].append(entry)
            break
        except SandboxError as exc:  # this run could not start or be written; go on
            entry.update(status="failed", error=str(exc))
            manifest["runs"].append(entry)
            outcome.failures.append(f"{item.allocator} repeat {item.repeat + 1}: {exc}")
            continue
        entry.update(run_id=result.run_id, status=result.status, file=path.name)
        manifest["runs"].append(entry)
        outcome.results.append(result)
        outcome.paths.append(path)
        if result.status == "interrupted":
            outcome.interrupted = True
            break
        if result.status != "ok":
            outcome.failures.append(f"{result.run_id}: {result.status_detail}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "experiment.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return outcome
