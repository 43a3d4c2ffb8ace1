"""What a new race runs: its arms (the catalogue's or those named, baseline first, those that
cannot run here left out with why) and its workload (an experiment file's settings, by default
experiments/quick.yml's for the stair-stepper, with the flags on top)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sandbox.advise import catalogue, rules
from sandbox.advise.catalogue import Arm
from sandbox.advise.state import RaceSettings
from sandbox.allocators import registry as allocators
from sandbox.config import settings as config
from sandbox.config.settings import Benchmark
from sandbox.errors import AllocatorError, ConfigError
from sandbox.experiment.definition import load_experiment

QUICK = config.REPO_ROOT / "experiments" / "quick.yml"
"""The stair-stepper's workload of a race unless another is given: about 25 s a run."""
TARGET_SETTINGS = ("app", "cmd", "locustfile")


def workload(
    experiment_file: Path | None, flags: Mapping[str, Any]
) -> tuple[dict[str, Any], str, int]:
    """The settings of every run and where they came from: the experiment file's (quick.yml's
    for the stair-stepper when none is given), then the flags; and the file's runs at once (1
    without a file: a service of the user's own)."""
    own_target = any(flags.get(k) for k in TARGET_SETTINGS)
    path = experiment_file or (None if own_target else QUICK)
    base: dict[str, Any] = {}
    words = []
    side_by_side = 1
    if path is not None:
        loaded = load_experiment(path)
        base, side_by_side = dict(loaded.overrides), loaded.side_by_side
        words.append(f"the settings of {path.name}")
    if flags:
        shown = " ".join(f"{k}={v}" for k, v in sorted(flags.items()))
        words.append(f"flags {shown}")
    return {**base, **flags}, " with ".join(words) or "benchmark.yml's settings", side_by_side


def arms(
    names: Sequence[str] | None,
    bench: Benchmark,
    cmd: str | None,
) -> tuple[list[Arm], list[str]]:
    """The arms to race, baseline first, and one line per arm left out."""
    try:
        chosen = catalogue.choose(names, bench.allocators)
    except KeyError as exc:
        known = ", ".join([a.name for a in catalogue.ARMS] + sorted(bench.allocators))
        raise ConfigError(
            f"--arms: unknown arm {exc.args[0]!r}; choose among: {known} (sandbox advise --list)"
        ) from None
    if not any(a.name == catalogue.BASELINE for a in chosen):
        chosen.insert(0, catalogue.BY_NAME[catalogue.BASELINE])
    chosen.sort(key=lambda a: a.name != catalogue.BASELINE)
    kept, skipped = [], []
    for arm in chosen:
        why = arm.skip_reason(cmd)
        if why is None and arm.library is not None:
            try:
                allocators.resolve(arm.name, {arm.name: arm.allocator()})
            except AllocatorError as exc:
                why = f"{arm.name}: skipped: {exc}"
        if why is None:
            kept.append(arm)
        else:
            skipped.append(why)
    if len(kept) < 2:
        raise ConfigError(
            "a race needs the baseline and at least one more arm that can run here; "
            + ("; ".join(skipped) or "name one with --arms")
        )
    return kept, skipped


def race_settings(
    bench: Benchmark,
    *,
    names: Sequence[str] | None,
    experiment_file: Path | None,
    flags: Mapping[str, Any],
    budget_s: float,
    tolerance: float = rules.TOLERANCE,
    min_rounds: int = rules.MIN_ROUNDS,
    max_rounds: int = rules.MAX_ROUNDS,
    seed: int = 0,
    side_by_side: int | None = None,
) -> RaceSettings:
    """The race's settings; runs at once: `side_by_side`, else the workload file's."""
    overrides, source, file_side_by_side = workload(experiment_file, flags)
    values = config.merge(bench.values, overrides)
    chosen, skipped = arms(names, bench, values.get("cmd"))
    config.build_spec(bench, overrides)  # the workload's errors now, not a round in
    return RaceSettings(
        name="advise",
        arms=tuple(chosen),
        skipped=tuple(skipped),
        overrides=overrides,
        budget_s=budget_s,
        tolerance=tolerance,
        min_rounds=min_rounds,
        max_rounds=max_rounds,
        seed=seed,
        workload=source,
        side_by_side=side_by_side or file_side_by_side,
    )


def listing() -> str:
    """`sandbox advise --list`: every arm of the catalogue, what it changes and sets."""
    out = []
    for arm in catalogue.ARMS:
        env = " ".join(f"{k}={v}" for k, v in arm.env.items())
        preload = f"LD_PRELOAD={arm.library} " if arm.library else ""
        needs = f"; needs {arm.requires}" if arm.requires else ""
        out.append(f"{arm.name}\n    {arm.changes}")
        out.append(
            f"    sets: {(preload + env).strip() or '(nothing)'}; package {arm.package}{needs}"
        )
    out.append(
        "Your own arms: define them under allocators: in benchmark.yml and name them with --arms."
    )
    return "\n".join(out)
