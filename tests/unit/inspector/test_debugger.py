"""Which gdb `sandbox inspect` uses, with fake `gdb` scripts, and when it refuses one."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from sandbox.errors import InspectError
from sandbox.inspector import debugger
from sandbox.inspector.debugger import Debugger, choose, parse_version, refusal
from sandbox.inspector.xsave import RegisterState

DEBIAN = "GNU gdb (Debian 13.1-3) 13.1"
UBUNTU = "GNU gdb (Ubuntu 12.1-0ubuntu1~22.04) 12.1"
PYPI = "GNU gdb (GDB) 18.1"
AMX_STATE = RegisterState((1 << 19) - 1, 11008, "test")
AVX512_STATE = RegisterState(0x2E7, 2696, "test")


def fake_gdb(folder: Path, banner: str, name: str = "gdb") -> str:
    """An executable `name` in `folder` that answers --version with `banner`; its path."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / name
    script.write_text(f'#!/bin/sh\necho "{banner}"\necho "Copyright (C) 2023"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def old_and_new(version: tuple[int, int] | None) -> Debugger:
    return Debugger("/usr/bin/gdb", version, "GNU gdb", "b1")


@pytest.fixture
def no_gdb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $SANDBOX_GDB, an interpreter in an empty folder, an empty PATH; the tmp folder."""
    monkeypatch.delenv(debugger.GDB_ENV, raising=False)
    (tmp_path / "venv").mkdir()
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    return tmp_path


@pytest.mark.parametrize(
    ("text", "version"),
    [
        (DEBIAN, (13, 1)),
        (PYPI, (18, 1)),
        (UBUNTU, (12, 1)),
        ("GNU gdb (GDB) Red Hat Enterprise Linux 8.2-20.el8", (8, 2)),
        ("GNU gdb (GDB) 14.0.50.20230101-git\nCopyright (C) 2023", (14, 0)),
        (f"{DEBIAN}\nCopyright (C) 2023 Free Software Foundation, Inc.\n", (13, 1)),
        ("garbage", None),
        ("", None),
        ("   \n", None),
    ],
)
def test_parse_version(text: str, version: tuple[int, int] | None) -> None:
    assert parse_version(text) == version


def test_debugger_properties() -> None:
    assert old_and_new((14, 0)).new_enough
    assert old_and_new((18, 1)).new_enough
    assert not old_and_new((13, 2)).new_enough
    assert not old_and_new(None).new_enough
    assert old_and_new(None).version_text == "unknown version"
    assert old_and_new((13, 1)).describe() == "gdb 13.1 (/usr/bin/gdb)"
    assert old_and_new((18, 1)).to_dict() == {
        "path": "/usr/bin/gdb",
        "version": "18.1",
        "banner": "GNU gdb",
        "build": "b1",
    }


def test_refusal_of_an_old_gdb_on_an_amx_host() -> None:
    message = refusal(old_and_new((13, 1)), AMX_STATE, 42)
    assert message is not None
    assert message.startswith(
        "gdb 13.1 (/usr/bin/gdb) cannot restore this CPU's 11,008-byte register state with AMX "
        "tile registers (gdb before 14 handles 2,696 bytes): a call would kill or corrupt "
        "process 42, so it was not touched; run scripts/setup.sh"
    )
    assert "gdb-for-pwndbg" in message and "SANDBOX_GDB" in message and "--no-attach" in message
    assert "\n" not in message
    unknown = refusal(old_and_new(None), AMX_STATE, 42)
    assert unknown is not None and unknown.startswith("gdb unknown version (/usr/bin/gdb)")


def test_refusal_allows() -> None:
    assert refusal(old_and_new((13, 1)), AVX512_STATE, 42) is None  # fits gdb 13's buffer
    assert refusal(old_and_new((18, 1)), AMX_STATE, 42) is None
    assert refusal(old_and_new((13, 1)), None, 42) is None  # not x86-64


def test_probe_and_build(tmp_path: Path) -> None:
    path = fake_gdb(tmp_path, PYPI)
    found = debugger.probe(path)
    assert (found.path, found.version, found.banner) == (path, (18, 1), PYPI)
    assert found.build == debugger.build_of(path) and len(found.build) == 16
    fake_gdb(tmp_path, DEBIAN)  # another build at the same path
    assert debugger.build_of(path) != found.build


def test_probe_reads_stderr_when_stdout_is_empty(tmp_path: Path) -> None:
    script = tmp_path / "gdb"
    script.write_text(f'#!/bin/sh\necho "{DEBIAN}" >&2\n')
    script.chmod(0o755)
    assert debugger.probe(str(script)).version == (13, 1)


def test_probe_of_a_file_that_does_not_run(tmp_path: Path) -> None:
    script = tmp_path / "gdb"
    script.write_text("not a program\n")  # not executable
    with pytest.raises(InspectError, match=rf"^gdb at {script} does not run \(.*\); run "):
        debugger.probe(str(script))


def test_choose_takes_sandbox_gdb_as_given(no_gdb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = fake_gdb(no_gdb / "mine", DEBIAN)
    fake_gdb(no_gdb / "venv", PYPI)  # a newer one beside the interpreter does not win
    monkeypatch.setenv(debugger.GDB_ENV, old)
    chosen = choose()
    assert (chosen.path, chosen.version) == (old, (13, 1))


def test_choose_finds_sandbox_gdb_on_path(no_gdb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = fake_gdb(no_gdb / "bin", PYPI, name="gdb-18")
    monkeypatch.setenv("PATH", str(no_gdb / "bin"))
    monkeypatch.setenv(debugger.GDB_ENV, "gdb-18")
    assert choose().path == path


def test_choose_with_sandbox_gdb_missing(no_gdb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = no_gdb / "none" / "gdb"
    monkeypatch.setenv(debugger.GDB_ENV, str(missing))
    with pytest.raises(InspectError) as info:
        choose()
    message = str(info.value)
    assert message.startswith(f"SANDBOX_GDB={missing} is not a file; run scripts/setup.sh")
    assert "\n" not in message


def test_choose_without_any_gdb(no_gdb: Path) -> None:
    assert debugger.candidates() == []
    with pytest.raises(InspectError) as info:
        choose()
    assert str(info.value) == debugger.GDB_MISSING


@pytest.mark.parametrize(
    ("beside", "on_path", "winner"),
    [
        (DEBIAN, PYPI, "path"),  # the new one wins, wherever it is
        (PYPI, DEBIAN, "venv"),
        (DEBIAN, UBUNTU, "venv"),  # only old ones: the first found
        (None, UBUNTU, "path"),
        (DEBIAN, None, "venv"),
    ],
)
def test_choose_prefers_a_new_enough_gdb(
    no_gdb: Path,
    monkeypatch: pytest.MonkeyPatch,
    beside: str | None,
    on_path: str | None,
    winner: str,
) -> None:
    paths = {}
    if beside is not None:
        paths["venv"] = fake_gdb(no_gdb / "venv", beside)
    if on_path is not None:
        paths["path"] = fake_gdb(no_gdb / "path", on_path)
    monkeypatch.setenv("PATH", f"{no_gdb / 'nothing'}:{no_gdb / 'path'}")
    assert debugger.candidates() == [paths[k] for k in ("venv", "path") if k in paths]
    assert choose().path == paths[winner]


def test_candidates_list_one_file_once(no_gdb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = fake_gdb(no_gdb / "venv", PYPI)
    monkeypatch.setenv("PATH", str(no_gdb / "venv"))
    assert debugger.candidates() == [path]


def test_a_file_beside_the_interpreter_that_is_not_executable_is_skipped(
    no_gdb: Path,
) -> None:
    (no_gdb / "venv" / "gdb").write_text("#!/bin/sh\n")
    assert debugger.candidates() == []
