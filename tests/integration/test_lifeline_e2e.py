"""The lifeline with real processes: a harness SIGKILLed leaves neither its child's group nor a
grandchild that left the group behind (each test about a second)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.integration.harness import REPO, harness_env

pytestmark = pytest.mark.e2e

# A harness in miniature: one child through the lifeline, a shell that starts a grandchild in a
# session of its own (as a daemonising --cmd server would), prints both pids, then waits.
HARNESS = """
import os, signal, sys, time
from sandbox.system import lifeline
child = lifeline.spawn(
    ["sh", "-c", "setsid sleep 60 & echo escaped $! ; exec sleep 61"],
    env=dict(os.environ), stdout=sys.stdout.fileno(),
)
print("child", child.pid, flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    return False


def test_a_killed_harness_takes_its_children_and_their_escapees_along() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", HARNESS],
        cwd=REPO,
        env=harness_env(),
        stdout=subprocess.PIPE,
        text=True,
    ) as harness:
        assert harness.stdout is not None
        try:
            # two writers share the pipe (Python's print, the shell's echo): read the two
            # "name pid" pairs from whatever lines they arrive in (one clean-clone run got a
            # line with one word, 2026-12-07)
            text = ""
            while len(pids := dict(re.findall(r"\b(child|escaped)\s+(\d+)", text))) < 2:
                line = harness.stdout.readline()
                assert line, f"the harness ended before printing both pids: {text!r}"
                text += line
            child, escaped = int(pids["child"]), int(pids["escaped"])
            deadline = time.monotonic() + 5.0
            while os.getsid(escaped) != escaped and time.monotonic() < deadline:
                time.sleep(0.01)  # until setsid has run
            assert alive(child) and alive(escaped)
            assert os.getsid(escaped) == escaped != os.getsid(child)  # out of the child's group
        except BaseException:
            harness.kill()
            raise

        harness.send_signal(signal.SIGKILL)
        harness.wait()
        deadline = time.monotonic() + 2.0
        while (alive(child) or alive(escaped)) and time.monotonic() < deadline:
            time.sleep(0.05)

        left = [pid for pid in (child, escaped) if alive(pid)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert left == []
