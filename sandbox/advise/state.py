"""race.json: a race's settings, its rounds (which arms ran, what was dropped, the best) and why
it stopped, written atomically after every round beside the experiment's manifest, so that
`sandbox advise --resume DIR` goes on where an interrupted race left off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sandbox.advise.catalogue import Arm
from sandbox.errors import ResultFormatError, SandboxError
from sandbox.results.shapes import Mismatch, from_plain, to_plain
from sandbox.system import state_file

FORMAT = "sandbox-race"
# History of VERSION:
# 1 - (0.6.0) settings, arms, rounds with drops and guardrails, stop.
VERSION = 1
NAME = "race.json"


@dataclass(frozen=True)
class RaceSettings:
    """What the race runs and how it decides."""

    name: str
    arms: tuple[Arm, ...]
    """Every arm that runs (skipped ones left out), baseline first."""
    skipped: tuple[str, ...]
    """One line per arm left out, with why."""
    overrides: Mapping[str, Any]
    """Settings of every run (the workload, --host-cores, ...)."""
    budget_s: float
    tolerance: float
    min_rounds: int
    max_rounds: int
    seed: int
    baseline: str = "glibc"
    workload: str = ""
    """Where the workload's settings came from, in words."""
    side_by_side: int = 1
    """Runs at once (`sandbox.experiment.side_by_side`)."""

    def on_disk(self, plain: dict[str, Any]) -> dict[str, Any]:
        """The arms last."""
        arms = plain.pop("arms")
        return {**plain, "arms": arms}


@dataclass(frozen=True)
class Round:
    """One round: every live arm once, each a fresh server."""

    index: int
    arms: tuple[str, ...]
    """In the order they ran."""
    runs: tuple[int, ...]
    """Their entries in the manifest."""
    elapsed_s: float = 0.0
    decided: bool = False
    best: str | None = None
    dropped: Mapping[str, str] = field(default_factory=dict)
    not_recommended: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RaceState:
    settings: RaceSettings
    rounds: tuple[Round, ...] = ()
    stopped: str | None = None
    """Why the race stopped; None while it runs (or when it was interrupted)."""

    @property
    def elapsed_s(self) -> float:
        return sum(r.elapsed_s for r in self.rounds)

    def dropped_at(self) -> dict[str, tuple[int, str]]:
        """Arm -> (round number from 1, why) for every dropped arm."""
        out: dict[str, tuple[int, str]] = {}
        for r in self.rounds:
            for arm, why in r.dropped.items():
                out.setdefault(arm, (r.index + 1, why))
        return out

    def live(self) -> list[str]:
        """The arms that run in the next round: not dropped, and the baseline always."""
        gone = self.dropped_at()
        base = self.settings.baseline
        return [a.name for a in self.settings.arms if a.name not in gone or a.name == base]

    def with_round(self, r: Round) -> RaceState:
        rounds = [x for x in self.rounds if x.index != r.index]
        return replace(self, rounds=tuple(sorted([*rounds, r], key=lambda x: x.index)))

    def on_disk(self, plain: dict[str, Any]) -> dict[str, Any]:
        """The file's format and version first."""
        return {"format": FORMAT, "version": VERSION, **plain}


def save(state: RaceState, folder: Path) -> Path:
    path = folder / NAME
    try:
        state_file.write(path, to_plain(state))
    except OSError as exc:
        raise SandboxError(
            f"could not write {path} ({exc.strerror or exc}); make room, then continue with: "
            f"sandbox advise --resume {folder}"
        ) from None
    return path


def load(folder: Path) -> RaceState:
    path = folder / NAME
    data = state_file.read(
        path,
        file_format=FORMAT,
        what="race file",
        missing=(
            f"{folder}: no {NAME}; --resume takes the folder of a race (results/advise-<time>/)"
        ),
    )
    if data.get("version") != VERSION:
        raise ResultFormatError(
            f"{path}: race version {data.get('version')!r} cannot be resumed (this sandbox "
            f"resumes version {VERSION}); run the race anew"
        )
    try:
        return from_plain(RaceState, data)
    except Mismatch as exc:
        raise ResultFormatError(f"{path}: {exc}") from None
