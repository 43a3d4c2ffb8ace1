"""Result files: written atomically and never over another (.json or .json.gz), read back with
their format, version, size and nesting checked, found in folders."""

from __future__ import annotations

import errno
import gzip
import io
import json
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sandbox.errors import ResultFormatError
from sandbox.results.model import FORMAT, READABLE_VERSIONS, RunResult
from sandbox.results.sampling import column_lengths_ok
from sandbox.results.shapes import Mismatch, from_plain, to_plain
from sandbox.system.atomic import write_atomic


class NotAResultError(ResultFormatError):
    """Valid JSON, but not a run result (an experiment manifest, a comparison)."""


def dump(result: RunResult, path: Path, *, force: bool = False) -> Path:
    """Write `result` to `path` (.json or .json.gz), atomically; never overwrite without force."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not force:
        raise FileExistsError(
            errno.EEXIST, f"result file already exists, will not overwrite: {path}"
        )
    text = json.dumps(to_plain(result), indent=1, allow_nan=False)
    data = text.encode()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    write_atomic(path, data)
    return path


MAX_RESULT_BYTES = 256 * 1024 * 1024
"""The most a result file may hold, decompressed: an hour at 10 Hz is a few MiB, and reading
this much JSON already takes some GiB of memory (a gzip bomb is cut off here)."""


MAX_NESTING = 32
"""The deepest a result file nests (format 3 needs 5: objects, types, entries)."""


def _read_json(path: Path) -> Any:
    """The JSON document in `path` (.json, or gzip by its magic bytes), read within
    MAX_RESULT_BYTES and MAX_NESTING; NaN and infinities are refused (dump never writes them)."""
    with open(path, "rb") as fh:
        raw = fh.read(MAX_RESULT_BYTES + 1)
        if raw[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as unzipped:
                raw = unzipped.read(MAX_RESULT_BYTES + 1)
    if len(raw) > MAX_RESULT_BYTES:
        raise ValueError(f"over {MAX_RESULT_BYTES // 1024**2} MiB of JSON")
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if _depth(data) > MAX_NESTING:
        raise ValueError(f"nested more than {MAX_NESTING} levels deep")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a result file may hold")


def _depth(data: Any) -> int:
    """How deeply lists and mappings nest in `data` (a scalar: 0), without recursion."""
    deepest, todo = 0, [(data, 1)]
    while todo:
        value, level = todo.pop()
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, dict | list):
            deepest = max(deepest, level)
            todo.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return deepest


def load(path: Path | str) -> RunResult:
    """Read a result file, rejecting other formats and versions with a clear message."""
    path = Path(path)
    try:
        data = _read_json(path)
    except FileNotFoundError:
        raise ResultFormatError(f"{path}: no such result file") from None
    except IsADirectoryError:
        raise ResultFormatError(f"{path}: a folder, not a result file") from None
    except (OSError, ValueError, EOFError, zlib.error) as exc:
        raise ResultFormatError(f"{path}: not a readable result file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        kind = data.get("format") if isinstance(data, dict) else None
        what = f"a {kind!r} file" if isinstance(kind, str) else f"JSON without 'format: {FORMAT}'"
        raise NotAResultError(
            f"{path}: not a sandbox result file ({what}); pass a run's result file "
            "or the folder that holds the runs"
        )
    version = data.get("version")
    if version not in READABLE_VERSIONS:
        readable = ", ".join(map(str, READABLE_VERSIONS))
        raise ResultFormatError(
            f"{path}: result format version {version!r} is not supported by this sandbox "
            f"(it reads versions {readable}); use the sandbox version that wrote it"
        )
    try:
        result = from_plain(RunResult, data)
    except Mismatch as exc:
        raise ResultFormatError(f"{path}: {exc}") from None
    for name in ("samples", "probes"):
        if not column_lengths_ok(getattr(result, name)):
            raise ResultFormatError(f"{path}: '{name}' columns have different lengths")
    return result


def find_result_files(paths: Iterable[Path | str]) -> list[Path]:
    """Expand files and folders (recursively) into result files, sorted by name."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(
                sorted(
                    f
                    for f in p.rglob("*.json*")
                    if f.name.endswith((".json", ".json.gz")) and not f.name.startswith(".")
                )
            )
        elif p.exists():
            found.append(p)
        else:
            raise ResultFormatError(f"{p}: no such file or folder")
    return found


def load_all(paths: Iterable[Path | str]) -> list[RunResult]:
    """Load every result file under `paths`, skipping JSON files that are not run results
    (experiment.json, comparison.json); when nothing else was found and such a file was named
    itself (not found in a folder), raises its NotAResultError instead of returning nothing."""
    results = []
    named_other: list[NotAResultError] = []
    for given in map(Path, paths):
        for f in find_result_files([given]):
            try:
                results.append(load(f))
            except NotAResultError as exc:
                if not given.is_dir():
                    named_other.append(exc)
    if not results and named_other:
        raise named_other[0]
    return results
