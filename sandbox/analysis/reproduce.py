"""The commands that reproduce a set of runs: the commit, the experiment or one `sandbox run`
per setting, then the comparison and the report."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sandbox.analysis.sections import git_commit
from sandbox.results import RunResult


def reproduce_commands(results: Sequence[RunResult], folder: Path | None) -> list[str]:
    """git checkout of the commit the runs used, the experiment (from experiment.json) or one
    `sandbox run` per group, then the comparison and this report."""
    out: list[str] = []
    commits = {git_commit(r)[0] for r in results}
    if len(commits) == 1 and None not in commits:
        out.append(f"git checkout {shlex.quote(str(commits.pop()))}")
    manifest = _manifest(folder)
    file = manifest.get("file") if manifest else None
    if isinstance(file, str) and file:
        repeats = manifest.get("repeats") if manifest else None
        extra = f" --repeats {int(repeats)}" if isinstance(repeats, int) else ""
        out.append(f"sandbox experiment {shlex.quote(file)}{extra}")
    else:
        seen: dict[str, None] = {}
        for r in results:
            seen.setdefault(run_command(r), None)
        out.extend(seen)
    if folder is not None:
        where = shlex.quote(str(folder))
        out += [f"sandbox compare {where}", f"sandbox report {where}"]
    return out


def _manifest(folder: Path | None) -> Mapping[str, Any] | None:
    """The experiment's experiment.json, when the folder has one."""
    if folder is None:
        return None
    try:
        data = json.loads((folder / "experiment.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == "sandbox-experiment" else None


# The settings each load model reads (the others keep their defaults and need no flag).
_MODEL_KEYS = {
    "rate": ("rate", "duration_s"),
    "ramp": ("rate", "to_rate", "duration_s"),
    "spike": ("rate", "duration_s", "spike_x", "spike_at_s", "spike_s"),
    "soak": ("duration_s",),
}
_MODEL_FLAGS = (
    ("rate", "--rate"),
    ("to_rate", "--to-rate"),
    ("duration_s", "--duration"),
    ("spike_x", "--spike-x"),
    ("spike_at_s", "--spike-at"),
    ("spike_s", "--spike-for"),
)


def run_command(r: RunResult) -> str:
    """A `sandbox run` with the run's allocator, load and server settings."""
    s, load, schedule = r.server, r.load.spec, r.load.schedule
    args = ["sandbox", "run", "--allocator", r.allocator.name]
    if load.tags:
        args += ["--tags", ",".join(load.tags)]
    args += ["--users", str(load.users), "--iterations", str(load.iterations)]
    args += ["--batches", str(schedule.batches), "--pause", f"{schedule.pause_s:g}"]
    args += ["--baseline", f"{schedule.baseline_s:g}", "--idle", f"{schedule.idle_s:g}"]
    model = load.model.to_dict()
    if load.model.name != "iterations":
        args += ["--load", load.model.name]
        for key, flag in _MODEL_FLAGS:
            if key in _MODEL_KEYS.get(load.model.name, ()) and model.get(key) is not None:
                args += [flag, f"{model[key]:g}"]
    if load.workers:
        args += ["--load-workers", str(load.workers)]
    args += ["--sleep-ms", str(s.sleep_ms), "--handler", s.handler, "--threads", str(s.threads)]
    if not s.pymalloc:
        args += ["--pymalloc", "off"]
    if s.workers > 1:
        args += ["--server-workers", str(s.workers)]
    if s.app and s.app != "cmd":
        args += ["--app", s.app]
    return " ".join(shlex.quote(a) for a in args)
