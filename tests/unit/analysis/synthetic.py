"""Synthetic stairs whose truth is known: a run's batch ends built from what each batch adds."""

from __future__ import annotations

from collections.abc import Sequence

from sandbox.analysis.growth import Run
from sandbox.analysis.stairs import Stairs, Step
from sandbox.units import MIB

PER_BATCH = 1000
"""Requests each synthetic batch sends."""


def stairs_of(added_mib: Sequence[float], base_mib: float = 40.0, rps: float = 100.0) -> Stairs:
    """A run whose RSS, live and kept-but-free start at `base_mib` and grow by `added_mib`, one
    figure per batch."""
    level = base_mib * MIB
    steps = []
    for i, added in enumerate(added_mib, start=1):
        level += added * MIB
        steps.append(Step(i, i * PER_BATCH, level, level, level, None))
    start = Step(0, 0, base_mib * MIB, base_mib * MIB, base_mib * MIB, None)
    return Stairs(start, tuple(steps), rps)


def run_of(added_mib: Sequence[float], base_mib: float = 40.0) -> Run:
    """The same as a growth.Run (bytes)."""
    ys = [base_mib * MIB]
    for added in added_mib:
        ys.append(ys[-1] + added * MIB)
    return Run(tuple(float(i * PER_BATCH) for i in range(len(ys))), tuple(ys))
