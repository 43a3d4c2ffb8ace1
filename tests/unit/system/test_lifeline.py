"""The lifeline: the reaper's protocol and what it kills, with fakes (no processes killed)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.system import lifeline, liveness
from sandbox.system.lifeline import HARNESS_ENV, Lifeline


def test_the_reaper_kills_the_groups_still_registered_at_end_of_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reaped: list[tuple[set[int], str]] = []

    def fake_reap(groups: set[int], token: str) -> tuple[list[int], list[int]]:
        reaped.append((set(groups), token))
        return sorted(groups), [77]

    monkeypatch.setattr(lifeline, "reap", fake_reap)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"+10\n+11\n-10\n+12\nnoise\n")))

    assert lifeline.main(["500:42"]) == 0

    assert reaped == [({11, 12}, "500:42")]
    assert capsys.readouterr().err == (
        "sandbox: the harness (pid 500) ended without stopping its children; "
        "killed process group(s) 11, 12 and process(es) 77\n"
    )


def test_a_clean_end_is_silent(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(lifeline, "reap", lambda groups, token: ([], []))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"+10\n-10\n")))

    assert lifeline.main(["500:42"]) == 0
    assert capsys.readouterr().err == ""


def test_the_harness_tells_the_reaper_each_group(tmp_path: Path) -> None:
    log = tmp_path / "lines"
    line = Lifeline(
        "1:2",
        [
            sys.executable,
            "-c",
            f"import sys; open({str(log)!r}, 'wb').write(sys.stdin.buffer.read())",
        ],
    )
    line.forget(5)  # nothing started yet: forgetting starts no reaper
    assert line.reaper is None

    line.watch(5)
    line.watch(6)
    line.forget(5)
    line.close()

    assert log.read_bytes() == b"+5\n+6\n-5\n"
    assert line.environ({"PATH": "/bin"}) == {"PATH": "/bin", HARNESS_ENV: "1:2"}


def test_a_dead_reaper_does_not_fail_the_harness() -> None:
    line = Lifeline("1:2", [sys.executable, "-c", "pass"])
    line.watch(5)
    assert line.reaper is not None
    line.reaper.wait()
    for pgid in range(6, 200):  # enough to fill and break the pipe
        line.watch(pgid)
    line.close()


def test_tagged_finds_the_processes_carrying_the_token() -> None:
    token = f"{os.getpid()}:test-{os.urandom(4).hex()}"
    env = {**os.environ, HARNESS_ENV: token}
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], env=env) as child:
        try:
            assert list(lifeline.tagged(token)) == [child.pid]
            assert list(lifeline.tagged(token + "x")) == []
        finally:
            child.kill()
    assert list(lifeline.tagged(token)) == []  # reaped: gone


def test_this_process_is_alive_and_a_dead_pid_is_not() -> None:
    me = liveness.this_process()
    assert me.pid == os.getpid() and me.start_ticks is not None
    assert liveness.alive(me) is True
    assert liveness.token(me) == f"{me.pid}:{me.start_ticks}"
    with subprocess.Popen([sys.executable, "-c", "pass"]) as child:
        pass
    from dataclasses import replace

    assert liveness.alive(replace(me, pid=child.pid)) is False  # exited (and reaped)
    assert liveness.alive(replace(me, start_ticks=me.start_ticks - 1)) is False  # a reused pid
    assert liveness.alive(replace(me, boot_id="another-boot")) is False
    assert liveness.alive(replace(me, hostname="elsewhere")) is None


def test_the_harness_exit_ends_and_reaps_its_reaper() -> None:
    """A harness that exits normally leaves no reaper running, and Python sees no Popen
    destroyed while its process runs (the ResourceWarning every run used to print)."""
    code = (
        "import sys; from sandbox.system.lifeline import Lifeline; "
        "line = Lifeline('1:2', [sys.executable, '-c', 'import sys; sys.stdin.read()']); "
        "line.watch(5); print(line.reaper.pid)"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-X", "dev", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert not os.path.exists(f"/proc/{int(done.stdout)}")  # exited and reaped
