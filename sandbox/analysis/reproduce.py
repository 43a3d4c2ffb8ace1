"""The commands that reproduce a set of runs: the commit, the experiment or one `sandbox run`
per setting, then the comparison and the report."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sandbox.analysis.sections import git_commit
from sandbox.config.flag_names import flag_for
from sandbox.results.model import RunResult


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
        rule = manifest.get("sequential") if manifest else None
        extra = f" --repeats {int(repeats)}" if isinstance(repeats, int) else ""
        if isinstance(rule, dict):  # --until-verdict: the rule decides the repeats again
            extra = (
                f" --until-verdict --max-repeats {int(rule['max_repeats'])}"
                f" --min-effect {float(rule['min_effect']):g}"
            )
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


def run_command(r: RunResult) -> str:
    """A `sandbox run` with the run's allocator, load and server settings, its flags named by
    the CLI's own flag table."""
    s, load, schedule = r.server, r.load.spec, r.load.schedule
    settings: list[tuple[str, str]] = [("allocator", r.allocator.name)]
    if load.tags:
        settings.append(("tags", ",".join(load.tags)))
    settings += [("concurrency", str(load.users)), ("iterations", str(load.iterations))]
    settings += [("batches", str(schedule.batches)), ("pause_s", f"{schedule.pause_s:g}")]
    settings += [("baseline_s", f"{schedule.baseline_s:g}"), ("idle_s", f"{schedule.idle_s:g}")]
    if load.model.name != "iterations":
        settings.append(("load", load.model.name))
        settings += [(name, f"{value:g}") for name, value in load.model.parameters().items()]
    if load.workers:
        settings.append(("load_workers", str(load.workers)))
    settings += [("sleep_ms", str(s.sleep_ms)), ("handler", s.handler)]
    settings.append(("threads", str(s.threads)))
    if not s.pymalloc:
        settings.append(("pymalloc", "off"))
    if s.workers > 1:
        settings.append(("workers", str(s.workers)))
    if s.app and s.app != "cmd":
        settings.append(("app", s.app))
    args = ["sandbox", "run"]
    for setting, value in settings:
        flag = flag_for(setting)
        assert flag is not None, setting  # every setting named here has a `sandbox run` flag
        args += [flag, value]
    return " ".join(shlex.quote(a) for a in args)
