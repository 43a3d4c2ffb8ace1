"""Existence and permission checks before inspecting a process, and their messages."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sandbox.errors import InspectError, TargetExitedError
from sandbox.inspector import access

MISSING_PID = 2**22 + 1  # above the kernel's pid_max limit


def test_denied_for_a_user_under_yama() -> None:
    assert str(access.denied(42, "attach to", scope=1, euid=1000)) == (
        "cannot attach to process 42: permission denied; run sandbox inspect as the user that "
        "owns the process, or as root; kernel.yama.ptrace_scope is 1: as root, "
        "'echo 0 > /proc/sys/kernel/yama/ptrace_scope' lets a user attach to its own "
        "processes; in a container, ptrace needs CAP_SYS_PTRACE (docker run --cap-add=SYS_PTRACE)"
    )


def test_denied_for_root_without_yama() -> None:
    assert str(access.denied(42, "read the memory map of", scope=0, euid=0)) == (
        "cannot read the memory map of process 42: permission denied; in a container, ptrace "
        "needs CAP_SYS_PTRACE (docker run --cap-add=SYS_PTRACE)"
    )


def test_check_exists() -> None:
    with pytest.raises(TargetExitedError, match=f"^no process with PID {MISSING_PID}$"):
        access.check_exists(MISSING_PID)
    with pytest.raises(InspectError, match="is this sandbox process itself"):
        access.check_exists(os.getpid())
    access.check_exists(os.getppid())


def test_a_zombie_has_exited() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        with pytest.raises(TargetExitedError, match="has exited"):
            access.check_exists(child.pid)
    finally:
        child.wait()


def test_tracer_and_command_line_of_a_child() -> None:
    code = "import sys; print('ready', flush=True); sys.stdin.read()"
    child = subprocess.Popen(
        [sys.executable, "-c", code, "marker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        assert access.tracer(child.pid) == 0
        access.check_not_traced(child.pid)
        assert access.command_line(child.pid).endswith("sys.stdin.read() marker")
        assert os.path.samefile(access.executable(child.pid), sys.executable)
    finally:
        child.communicate(b"")
    assert access.command_line(MISSING_PID) == ""
    assert access.executable(MISSING_PID) == ""


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (0x0300, "exit code 3"),
        (0, "exit code 0"),
        (0xFF00, "exit code 255"),
        (9, "killed by SIGKILL"),
        (11 | 0x80, "killed by SIGSEGV"),  # with a core dump
        (100, "killed by signal 100"),
    ],
)
def test_wait_status(status: int, words: str) -> None:
    assert access.wait_status(status) == words


def test_died_while_gdb_held_it() -> None:
    error = access.died(42, None, None)
    assert isinstance(error, TargetExitedError)
    assert str(error) == "process 42 died while gdb held it; the inspection may have caused it"
    assert str(access.died(42, "killed by SIGSEGV", "Couldn't write extended state status")) == (
        "process 42 died while gdb held it (killed by SIGSEGV); gdb said: Couldn't write "
        "extended state status; the inspection may have caused it"
    )


def test_died_after_gdb_let_it_go() -> None:
    assert str(access.died(42, "exit code 1", None, after_s=0.5)) == (
        "process 42 died within 0.5 s after gdb detached (exit code 1); "
        "the inspection may have caused it"
    )
    assert str(access.died(42, None, "warning: x", after_s=2.0)) == (
        "process 42 died within 2 s after gdb detached; gdb said: warning: x; "
        "the inspection may have caused it"
    )


def test_ended_how_of_a_live_or_missing_process() -> None:
    assert access.ended_how(os.getpid()) is None
    assert access.ended_how(MISSING_PID) is None


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("import sys; sys.exit(3)", "exit code 3"),
        ("import os; os.kill(os.getpid(), 9)", "killed by SIGKILL"),
    ],
)
def test_ended_how_of_a_zombie(code: str, words: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        assert access.ended_how(child.pid) == words
    finally:
        child.wait()
    assert access.ended_how(child.pid) is None  # reaped: nothing left to read
