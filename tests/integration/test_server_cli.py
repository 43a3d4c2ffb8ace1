"""`python -m sandbox.server` start-up errors: one line on stderr, the right exit code."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.integration.conftest import free_port, server_env

pytestmark = pytest.mark.e2e


def start(port: int, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox.server", "--port", str(port)],
        env=server_env(**settings),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_bad_setting_exits_2() -> None:
    done = start(free_port(), SLEEP_MS="abc")
    assert done.returncode == 2
    assert done.stderr == "Error: SLEEP_MS has value 'abc'; expected a whole number >= 0\n"


def test_busy_port_exits_1() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = start(port)
    assert done.returncode == 1
    assert done.stderr == (
        f"Error: port {port} on 127.0.0.1 is in use; stop the other server or pass --port\n"
    )
