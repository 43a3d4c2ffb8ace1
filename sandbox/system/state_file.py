"""A folder's JSON state file (an experiment's `experiment.json`, a race's `race.json`): written
atomically after every step, read back with its format checked, so a resume finds the old file
or the new one, never a part, and a wrong file is refused in one line."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sandbox.errors import ResultFormatError
from sandbox.system.atomic import write_atomic


def write(path: Path, data: Mapping[str, Any]) -> None:
    """`data` as indented JSON at `path` (its folder made if need be), atomically; OSError (a
    full disk) is the caller's to word, with its own way to go on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(data, indent=1) + "\n").encode())


def read(path: Path, *, file_format: str, what: str, missing: str) -> dict[str, Any]:
    """The JSON object at `path`, whose `format` is `file_format`; ResultFormatError otherwise:
    `missing` when there is no file, else naming `path` and `what` it should be."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultFormatError(missing) from None
    except (OSError, ValueError) as exc:
        raise ResultFormatError(f"{path}: not a readable {what} ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != file_format:
        raise ResultFormatError(f"{path}: not a sandbox {what}")
    return data
