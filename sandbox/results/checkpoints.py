"""Checkpoints of runs under way (`<run_id>.partial.json`), and what becomes of them when their
harness died: the next command that finds one marks it `harness-died` and keeps it readable.

A checkpoint whose harness still runs is left alone (status `running`); so is one from another
machine (its harness cannot be looked up from here). One whose final result is beside it (the
harness died between writing the result and removing the checkpoint) is removed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from sandbox.errors import ResultFormatError
from sandbox.results import files as result_files
from sandbox.results.model import RunResult
from sandbox.system import liveness

SUFFIX = ".partial.json"


def partial_path(folder: Path, run_id: str) -> Path:
    """Where run `run_id`'s checkpoint goes."""
    return folder / f"{run_id}{SUFFIX}"


def is_partial(path: Path) -> bool:
    return path.name.endswith(SUFFIX)


def find_partials(paths: Iterable[Path]) -> list[Path]:
    """The checkpoints among `paths` (files, or folders searched recursively); paths that do not
    exist are left for the caller to report."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob(f"*{SUFFIX}") if not f.name.startswith(".")))
        elif is_partial(p) and p.is_file():
            found.append(p)
    return found


@dataclass(frozen=True)
class Settled:
    """A checkpoint of a dead harness, as the command found it and what it did."""

    path: Path
    result: RunResult
    """The checkpoint as it is now (marked `harness-died`), or as it was (removed)."""
    removed_for: Path | None = None
    """The final result beside it, when the checkpoint was removed for it."""
    error: str | None = None
    """Why the mark could not be written (a read-only folder): it reads as `running`."""

    def describe(self) -> str:
        if self.removed_for is not None:
            return f"removed the checkpoint {self.path}: its final result {self.removed_for} exists"
        if self.error is not None:
            return f"{self.path}: its harness died, but it could not be marked ({self.error})"
        return f"marked {self.path} harness-died: {self.result.status_detail}"


def died_detail(result: RunResult) -> str:
    """`the harness (pid N) died; this is its last checkpoint, written 41 s into the run during
    batch-2`, and the run's own notes after it."""
    pid = result.harness.pid if result.harness else "?"
    phase = result.phases[-1].name if result.phases else "start"
    t = result.samples.get("t_s") or [0.0]
    said = (
        f"the harness (pid {pid}) died; this is its last checkpoint, written {t[-1]:.0f} s "
        f"into the run during {phase}"
    )
    return "; ".join(d for d in (said, result.status_detail) if d)


def settle(paths: Iterable[Path]) -> list[Settled]:
    """Mark every checkpoint under `paths` whose harness died; what was done, for the terminal."""
    done: list[Settled] = []
    for path in find_partials(paths):
        try:
            found = result_files.load(path)
        except ResultFormatError:
            continue  # not ours to judge: the loaders report it
        if found.status != "running" or found.harness is None:
            continue
        if liveness.alive(found.harness) is not False:
            continue
        finals = [path.with_name(f"{found.run_id}{ext}") for ext in (".json", ".json.gz")]
        final = next((f for f in finals if f.is_file()), None)
        if final is not None:
            path.unlink(missing_ok=True)
            done.append(Settled(path, found, removed_for=final))
            continue
        marked = replace(found, status="harness-died", status_detail=died_detail(found))
        try:
            result_files.dump(marked, path, force=True)
        except OSError as exc:
            done.append(Settled(path, found, error=exc.strerror or str(exc)))
            continue
        done.append(Settled(path, marked))
    return done
