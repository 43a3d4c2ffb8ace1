"""Where a run's result goes: its results folder or, when that write fails, a fallback folder.

A run can take an hour; a full disk at the end must not lose it. The fallback is gzipped (a
nearly full disk is the usual cause) and lives in the system's temporary folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.results import files as result_files
from sandbox.results.model import RunResult


class ResultWriteError(SandboxError):
    """The result could not be written where it belongs; the message says where it went."""

    def __init__(self, message: str, written_to: Path | None = None) -> None:
        super().__init__(message)
        self.written_to = written_to
        """The fallback copy, or None when the run's data is lost."""


def fallback_dir() -> Path:
    """`$TMPDIR/sandbox-results` (or the system's temporary folder)."""
    return Path(tempfile.gettempdir()) / "sandbox-results"


def check_writable(folder: Path) -> None:
    """Create `folder` and write a file in it, or raise naming the folder and the fix."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise SandboxError(
            f"cannot write results to {folder} ({exc.strerror}); choose another --results-dir"
        ) from None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def save(result: RunResult, path: Path, fallback: Path | None = None) -> Path:
    """Write `result` to `path` (atomically: never a truncated file there).

    Raises ResultWriteError when that fails, after writing `result` to the fallback folder
    (`fallback_dir()` by default) as `<run_id>.json.gz`; the message gives both outcomes.
    """
    try:
        return result_files.dump(result, path)
    except OSError as exc:
        why = _reason(exc)
    folder = fallback or fallback_dir()
    spare = folder / f"{result.run_id}.json.gz"
    try:
        result_files.dump(result, spare)
    except OSError as exc:
        raise ResultWriteError(
            f"could not write the result to {path} ({why}), nor to {spare} ({_reason(exc)}); "
            "the run's data is lost"
        ) from None
    raise ResultWriteError(
        f"could not write the result to {path} ({why}); it was written to {spare} instead",
        written_to=spare,
    )
