"""A run's partial result on disk, rewritten every few seconds while it runs, so that a harness
killed mid-run (SIGKILL, the OOM killer) leaves what it had measured.

The checkpoint is `<run_id>.partial.json` beside where the result will go, status `running`,
written atomically (a temporary file renamed over the last one). The final result replaces it:
the runner calls `finish` once that is written. The next command that finds a checkpoint whose
harness is dead marks it `harness-died` (`sandbox.results.checkpoints`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sandbox.results import files as result_files
from sandbox.results.checkpoints import partial_path
from sandbox.results.model import RunResult, Status

EVERY_S = 5.0
"""Seconds between checkpoints."""
MAX_SHARE = 0.05
"""At most this share of the run's time goes to checkpoints: a long run's result takes longer to
build and write, so the interval grows with it (20 × the last write's time)."""


class Checkpointer:
    """`maybe()` on every tick of the run loop writes the partial result when it is due."""

    def __init__(
        self,
        folder: Path,
        run_id: str,
        build: Callable[[], RunResult],
        *,
        every_s: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = partial_path(folder, run_id)
        self.build = build
        """The partial result now (status `running`)."""
        self.every_s = every_s
        self.clock = clock
        self.next_at = -math.inf
        """The first call writes at once."""
        self.written: RunResult | None = None
        """The last checkpoint on disk."""
        self.failure: str | None = None
        """Why a checkpoint could not be written (the first failure), for the result's notes."""

    def maybe(self) -> None:
        """Write the checkpoint if it is due; a failed write is remembered, never raised."""
        started = self.clock()
        if started < self.next_at:
            return
        try:
            partial = self.build()
            result_files.dump(partial, self.path, force=True)
            self.written = partial
        except (OSError, ValueError) as exc:  # ValueError: a figure JSON cannot hold
            if self.failure is None:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                self.failure = (
                    f"checkpoints could not be written to {self.path} ({why}); "
                    "a harness killed mid-run would have lost the run"
                )
        cost_s = self.clock() - started
        self.next_at = self.clock() + max(self.every_s, cost_s / MAX_SHARE)

    def soon(self) -> None:
        """Write at the next tick, due or not (a batch's statistics just came in)."""
        self.next_at = -math.inf

    def finish(self) -> None:
        """The final result is written (or its fallback copy): the checkpoint goes."""
        self.path.unlink(missing_ok=True)

    def abandon(self, status: Status, detail: str) -> None:
        """The run ends without a final result, the harness alive: relabel the last checkpoint,
        so that it is not later taken for one whose harness died."""
        if self.written is None:
            return
        # If this fails too, it stays `running`, and becomes `harness-died` once we exit.
        with contextlib.suppress(OSError):
            relabelled = replace(self.written, status=status, status_detail=detail)
            result_files.dump(relabelled, self.path, force=True)
