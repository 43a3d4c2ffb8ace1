"""Writing a result when the disk is full: nothing truncated left behind, a fallback copy."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import IO, Any

import pytest

from sandbox.results import files as result_files
from sandbox.results import storage
from sandbox.results.storage import ResultWriteError
from sandbox.system import atomic
from tests.fakes import make_result

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _HalfWriter:
    """A file that takes half of what it is given, then fails like a full disk."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh

    def __enter__(self) -> _HalfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()

    def write(self, data: bytes) -> int:
        self.fh.write(data[: len(data) // 2])
        self.fh.flush()
        raise ENOSPC


def fill_disk_under(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Every result written under `folder` fails half-way with ENOSPC."""

    def fake_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        fh = open(path, mode, *args, **kwargs)  # noqa: SIM115
        return _HalfWriter(fh) if Path(path).is_relative_to(folder) else fh

    monkeypatch.setattr(atomic, "open", fake_open, raising=False)


def test_a_failed_write_leaves_no_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fill_disk_under(monkeypatch, tmp_path)

    with pytest.raises(OSError, match="No space left on device"):
        result_files.dump(make_result(), tmp_path / "r.json")

    assert list(tmp_path.iterdir()) == []  # neither the result nor its temporary file


def test_the_result_goes_to_the_fallback_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    full, spare = tmp_path / "full", tmp_path / "spare"
    full.mkdir()
    fill_disk_under(monkeypatch, full)
    result = make_result()

    with pytest.raises(ResultWriteError) as raised:
        storage.save(result, full / "r.json", fallback=spare)

    copy = spare / f"{result.run_id}.json.gz"
    assert str(raised.value) == (
        f"could not write the result to {full / 'r.json'} (No space left on device); "
        f"it was written to {copy} instead"
    )
    assert result_files.load(copy) == result
    assert list(full.iterdir()) == []


def test_the_fallback_folder_is_under_tmpdir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    assert storage.fallback_dir() == tmp_path / "sandbox-results"


def test_when_the_fallback_fails_too_it_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fill_disk_under(monkeypatch, tmp_path)
    result = make_result()

    with pytest.raises(ResultWriteError) as raised:
        storage.save(result, tmp_path / "r.json", fallback=tmp_path / "spare")

    assert str(raised.value) == (
        f"could not write the result to {tmp_path / 'r.json'} (No space left on device), nor to "
        f"{tmp_path / 'spare' / result.run_id}.json.gz (No space left on device); "
        "the run's data is lost"
    )
    assert [p.name for p in tmp_path.rglob("*")] == ["spare"]


def test_a_good_write_returns_its_path(tmp_path: Path) -> None:
    result = make_result()

    path = storage.save(result, tmp_path / "r.json.gz", fallback=tmp_path / "spare")

    assert path == tmp_path / "r.json.gz"
    assert result_files.load(path) == result
    assert not (tmp_path / "spare").exists()
