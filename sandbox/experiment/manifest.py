"""The experiment manifest, `experiment.json`: the plan in execution order, what each planned run
became, and what a resume needs to run the rest exactly as planned.

It is written atomically when the experiment starts, when each run starts and after each run,
so that a harness killed at any moment leaves a manifest that says which runs are done.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sandbox.allocators.registry import Allocator
from sandbox.errors import ResultFormatError, SandboxError
from sandbox.results.conditions import HarnessInfo
from sandbox.results.shapes import (
    Mismatch,
    from_plain,
    omitted_when_empty,
    omitted_when_none,
    to_plain,
)
from sandbox.system import state_file

FORMAT = "sandbox-experiment"
# History of VERSION:
# 1 - (0.1.0) the experiment's settings and the runs attempted, written once, at the end.
# 2 - (0.4.0) written atomically at the start and around every run: `runs` holds every planned
#     run in execution order (status `pending` until it starts, `running` while it runs), with
#     its earlier attempts (`superseded`) when it was rerun; the experiment file's text and
#     sha256, the settings its runs share (`settings`) and the allocators' definitions, so that
#     `sandbox experiment --resume` can run the rest as planned or say what changed; the harness
#     running it.
# 3 - (0.5.1) `sequential`: the stopping rule of `--until-verdict` (its design), `looks` (what
#     each look saw) and `stop` (the look that stopped it); the runs past the stop stay pending.
#     Version 2 (no rule) is still resumed.
# 4 - (0.5.2) `side_by_side`: how many runs at once (1 when absent).
VERSION = 4
RESUMABLE = (2, 3, 4)
NAME = "experiment.json"

KEPT = ("ok", "server-died", "server-hung", "memory-cap")
"""A run that ended so is done: how the server fared is the measurement. Any other status
(pending, running, interrupted, harness-died, failed: the harness or Locust did not finish) is
incomplete, and a resume runs it again."""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def plain(value: Any) -> Any:
    """`value` as JSON holds it (tuples become lists, paths strings)."""
    return json.loads(json.dumps(value, default=str))


def run_key(allocator: str, repeat: int, parameters: Mapping[str, Any]) -> str:
    """What tells planned runs apart, and what a result file says of itself."""
    return json.dumps([allocator, repeat, plain(dict(parameters))], sort_keys=True)


@dataclass(frozen=True)
class Attempt:
    """An earlier attempt at a planned run, superseded by a rerun."""

    status: str
    run_id: str | None = field(default=None, metadata=omitted_when_none())
    file: str | None = field(default=None, metadata=omitted_when_none())
    error: str | None = field(default=None, metadata=omitted_when_none())


@dataclass(frozen=True)
class Entry:
    """One planned run and what became of it."""

    index: int
    allocator: str
    repeat: int
    parameters: Mapping[str, Any]
    status: str = "pending"
    run_id: str | None = field(default=None, metadata=omitted_when_none())
    file: str | None = field(default=None, metadata=omitted_when_none())
    """The result file's name in the experiment's folder."""
    error: str | None = field(default=None, metadata=omitted_when_none())
    """Why a run that could not start or be written has no file."""
    fallback: str | None = field(default=None, metadata=omitted_when_none())
    """Where its result went when the folder could not take it (a full disk): a resume takes it
    back."""
    superseded: tuple[Attempt, ...] = field(default=(), metadata=omitted_when_empty())

    @property
    def done(self) -> bool:
        return self.status in KEPT

    @property
    def key(self) -> str:
        """Allocator, repeat and parameters: what a result file of this run says of itself."""
        return run_key(self.allocator, self.repeat, self.parameters)

    def attempt(self) -> Attempt:
        return Attempt(self.status, self.run_id, self.file, self.error)

    def started(self) -> Entry:
        """The entry as its run starts: an earlier attempt goes to `superseded`."""
        earlier = self.superseded
        if self.status != "pending":
            earlier = (*earlier, self.attempt())
        return replace(
            self,
            status="running",
            run_id=None,
            file=None,
            error=None,
            fallback=None,
            superseded=earlier,
        )


@dataclass(frozen=True)
class Manifest:
    """An experiment's plan and progress."""

    name: str
    description: str
    file: str | None
    """The experiment file, as given."""
    file_text: str | None
    """Its contents when the experiment began (a resume plans from these)."""
    file_sha256: str | None
    benchmark: str | None
    """The benchmark.yml read, if any."""
    allocators: list[str]
    repeats: int
    """As run (the file's, or --repeats)."""
    order: str
    seed: int
    baseline: str | None
    vary: dict[str, Any]
    overrides: dict[str, Any]
    settings: dict[str, Any]
    """Every setting the runs share (defaults, benchmark.yml, the file), as JSON holds them."""
    allocator_definitions: dict[str, Any]
    """Library, environment and package of each allocator of the experiment."""
    runs: tuple[Entry, ...]
    started_at: str
    updated_at: str = ""
    harness: HarnessInfo | None = None
    """The harness running it (or that ran it last)."""
    sequential: dict[str, Any] | None = None
    """`--until-verdict`'s design (`sandbox.analysis.sequential.Design.to_dict`); None for a
    fixed number of repeats."""
    looks: tuple[dict[str, Any], ...] = ()
    """What each look of the rule saw (`Look.to_dict`), in order."""
    stop: dict[str, Any] | None = None
    """The look that stopped the experiment, and its summary; the runs after it stay pending
    and a resume runs none of them."""
    side_by_side: int = 1
    """How many runs at once (a resume runs the rest so too)."""

    def with_entry(self, entry: Entry) -> Manifest:
        runs = list(self.runs)
        runs[entry.index] = entry
        return replace(self, runs=tuple(runs))

    def on_disk(self, plain: dict[str, Any]) -> dict[str, Any]:
        """The file's format and version first, the runs last."""
        runs = plain.pop("runs")
        return {"format": FORMAT, "version": VERSION, **plain, "runs": runs}


def shared_settings(values: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting the experiment's runs share: defaults, then benchmark.yml's `values`, then
    the experiment file's `overrides` (as JSON holds them)."""
    from sandbox.config import settings as config

    merged: dict[str, Any] = plain(config.merge(values, overrides))
    return merged


def allocator_definitions(
    registry: Mapping[str, Allocator], names: Sequence[str]
) -> dict[str, Any]:
    """Library, environment and package of each allocator named (as JSON holds them)."""
    return {
        n: plain({"library": a.library, "env": dict(a.env), "package": a.package})
        for n in names
        if (a := registry.get(n)) is not None
    }


class ManifestWriteError(SandboxError):
    """experiment.json could not be written (a full disk): the experiment stops."""


def save(manifest: Manifest, folder: Path) -> Path:
    """Write `folder/experiment.json` atomically; ManifestWriteError names the fix."""
    path = folder / NAME
    try:
        state_file.write(path, to_plain(manifest))
    except OSError as exc:
        raise ManifestWriteError(
            f"could not write {path} ({exc.strerror or exc}); the runs so far are in {folder}: "
            f"make room, then continue with: sandbox experiment --resume {folder}"
        ) from None
    return path


def load(folder: Path) -> Manifest:
    """Read `folder/experiment.json`; errors say what is wrong and what to do."""
    path = folder / NAME
    data = state_file.read(
        path,
        file_format=FORMAT,
        what="experiment manifest",
        missing=(
            f"{folder}: no {NAME}; --resume takes the folder of an experiment "
            "(results/<name>-<time>/)"
        ),
    )
    if data.get("version") not in RESUMABLE:
        raise ResultFormatError(
            f"{path}: manifest version {data.get('version')!r} cannot be resumed (this sandbox "
            f"resumes versions {', '.join(map(str, RESUMABLE))}); run the experiment anew"
        )
    try:
        return from_plain(Manifest, data)
    except Mismatch as exc:
        raise ResultFormatError(f"{path}: {exc}") from None


def _holder(folder: Path) -> str:
    """Who runs `folder` now, as its manifest says."""
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        pid = json.loads((folder / NAME).read_text())["harness"]["pid"]
        return f"pid {int(pid)}"
    return "another process"


@contextlib.contextmanager
def lock(folder: Path) -> Iterator[None]:
    """Hold the experiment's lock while it runs or is resumed: a second harness on the same
    folder is refused. The lock is the folder's own (no lock file); the kernel drops it when
    the harness dies."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SandboxError(
                f"{folder} is being run by another sandbox ({_holder(folder)}); wait for it to "
                "finish, or stop it, then resume"
            ) from None
        yield
    finally:
        os.close(fd)
