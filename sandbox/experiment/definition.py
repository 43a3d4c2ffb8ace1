"""An experiment's definition: allocators × settings × repeats, interleaved, each run a fresh
server; read from its file and planned run by run (`execution` runs it).

An experiment file (experiments/NAME.yml) holds benchmark.yml's keys as overrides, plus:
  name, description, allocators (list), repeats, order (interleaved | shuffled), seed,
  side_by_side (how many runs at once, 1 by default: `side_by_side`),
  baseline (group to compare against) and vary (setting -> list of values: every combination
  is a group) or cases (a list of setting -> value mappings: each one is a group, e.g. one known
  truth each in experiments/truths.yml).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.allocators.registry import Allocator
from sandbox.config import settings as config
from sandbox.errors import ConfigError

MAX_RUNS = 10_000
"""More runs than an experiment could ever finish (each starts a server: about a minute)."""
_EXPERIMENT_KEYS = (
    "name",
    "description",
    "allocators",
    "repeats",
    "order",
    "seed",
    "baseline",
    "side_by_side",
)
MAX_SIDE_BY_SIDE = 8
"""More servers at once than 2 cores can serve without the answer moving (docs/evidence.md,
section 14)."""
# Also: custom_allocators (like benchmark.yml's allocators:), vary, cases.


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
    cases: tuple[Mapping[str, Any], ...] = ()
    """Instead of vary: each mapping (setting name -> value) is a group."""
    custom_allocators: Mapping[str, Allocator] = field(default_factory=dict)
    """Allocators defined by the experiment itself (e.g. a second glibc label for A/A)."""
    path: Path | None = None
    side_by_side: int = 1
    """How many runs at once, each a server of its own (`sandbox.experiment.side_by_side`)."""


@dataclass(frozen=True)
class PlannedRun:
    allocator: str
    parameters: Mapping[str, Any]
    repeat: int


def load_experiment(path: Path, text: str | None = None) -> Experiment:
    """Read and validate an experiment file (or `text`, its contents as read earlier); errors
    name the file and key."""
    source = str(path)
    data = dict(config.read_yaml(path, text))
    head = {k: data.pop(k) for k in _EXPERIMENT_KEYS if k in data}
    vary_raw = data.pop("vary", None) or {}
    cases_raw = data.pop("cases", None)
    custom = config.read_allocators(source, data.pop("custom_allocators", None))
    # The experiment's own keys are gone from `data`; naming them lets a typo suggest them.
    overrides = config.read_settings(
        source, data, (*_EXPERIMENT_KEYS, "vary", "cases", "custom_allocators")
    )
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
    cases = _cases(source, cases_raw)
    if cases and vary:
        raise ConfigError(f"{source}: give vary or cases, not both (cases name each group)")
    groups = len(cases) if cases else math.prod(len(v) for v in vary.values())
    runs = len(allocs) * repeats * groups
    if runs > MAX_RUNS:
        raise ConfigError(
            f"{source}: {runs:,} runs planned (allocators x vary x repeats); at most "
            f"{MAX_RUNS:,}: lower repeats or vary fewer values"
        )
    side_by_side = head.get("side_by_side", 1)
    if (
        isinstance(side_by_side, bool)
        or not isinstance(side_by_side, int)
        or not 1 <= side_by_side <= MAX_SIDE_BY_SIDE
    ):
        raise ConfigError(
            f"{source}: side_by_side has value {side_by_side!r}; expected a whole number from 1 "
            f"to {MAX_SIDE_BY_SIDE}"
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
        cases=cases,
        custom_allocators=custom,
        path=path,
        side_by_side=side_by_side,
    )


def _cases(source: str, raw: Any) -> tuple[dict[str, Any], ...]:
    """`cases:` validated: a list of mappings of settings to values."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw or not all(isinstance(c, Mapping) for c in raw):
        raise ConfigError(f"{source}: cases must be a non-empty list of setting: value mappings")
    cases = []
    for i, case in enumerate(raw):
        checked: dict[str, Any] = {}
        for key, value in case.items():
            if key not in config.SETTINGS:
                raise ConfigError(
                    f"{source}: cases[{i}].{key} is not a setting; use a name such as leak_bytes"
                )
            checked[key] = config.validate(source, f"cases[{i}].{key}", key, value)
        cases.append(checked)
    return tuple(cases)


def plan_runs(exp: Experiment) -> list[PlannedRun]:
    """Every run, in execution order: each repeat round holds every group once (A B A B ...)."""
    keys = list(exp.vary)
    combos = [dict(c) for c in exp.cases] or [
        dict(zip(keys, values, strict=True)) for values in itertools.product(*exp.vary.values())
    ]
    if exp.overrides.get("host_cores") is not None:  # build_spec puts it in the parameters
        combos = [{**c, "host_cores": exp.overrides["host_cores"]} for c in combos]
    groups = [(a, c) for c in combos for a in exp.allocators]
    rng = random.Random(exp.seed)
    order: list[PlannedRun] = []
    for r in range(exp.repeats):
        round_ = [PlannedRun(a, c, r) for a, c in groups]
        if exp.order == "shuffled":
            rng.shuffle(round_)
        order.extend(round_)
    return order
