"""A server beyond loopback only with --expose, and then with a connection limit; the request
deadlines and uvicorn's limits always (`sandbox serve` and `python -m sandbox.server`)."""

from __future__ import annotations

import functools
import pickle
from collections.abc import Iterator, Mapping
from typing import Any
from unittest.mock import MagicMock, patch

import pytest
from click.testing import CliRunner

from sandbox.cli.main import cli
from sandbox.config.server_settings import EXPOSED_LIMITS, LOCAL_LIMITS, ServeLimits, exposure_error
from sandbox.server import __main__ as server_main
from sandbox.server.protocol import DeadlineProtocol

REFUSAL = (
    "--host {host} is beyond loopback: anyone who can reach it can make this server allocate "
    "(some 50 times each request body, in up to THREADS requests at once); add --expose to "
    "serve there anyway, on a network you trust (then: at most 128 connections at once (503 "
    "past them), request headers within 10 s and up to 16 KiB, a body within 30 s, idle "
    "keep-alive 5 s)"
)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_loopback_needs_no_flag(host: str) -> None:
    assert exposure_error(host, expose=False) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com", ""])
def test_anything_else_needs_expose(host: str) -> None:
    assert exposure_error(host, expose=False) == REFUSAL.format(host=host)
    assert exposure_error(host, expose=True) is None


def test_the_limits_read_as_stated() -> None:
    assert LOCAL_LIMITS.describe() == (
        "request headers within 10 s and up to 16 KiB, a body within 30 s, idle keep-alive 5 s"
    )
    assert ServeLimits(max_connections=128) == EXPOSED_LIMITS


# --- sandbox serve --------------------------------------------------------------------------


@pytest.fixture
def execve() -> Iterator[MagicMock]:
    with (
        patch("sandbox.system.processes.port_in_use", return_value=False),
        patch("os.execve") as mock,
    ):
        yield mock


def test_serve_beyond_loopback_without_expose_is_a_usage_error(execve: MagicMock) -> None:
    done = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"], prog_name="sandbox")
    assert done.exit_code == 2
    assert done.stderr.splitlines()[-1] == f"Error: {REFUSAL.format(host='0.0.0.0')}"
    execve.assert_not_called()


def test_serve_with_expose_passes_it_to_the_server(execve: MagicMock) -> None:
    done = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--expose"], prog_name="sandbox")
    assert done.exit_code == 0, done.output
    command = execve.call_args.args[1]
    assert command[-7:] == [
        "-m",
        "sandbox.server",
        "--host",
        "0.0.0.0",
        "--port",
        "3000",
        "--expose",
    ]


def test_serve_on_loopback_is_not_exposed(execve: MagicMock) -> None:
    done = CliRunner().invoke(cli, ["serve"], prog_name="sandbox")
    assert done.exit_code == 0, done.output
    assert "--expose" not in execve.call_args.args[1]


# --- python -m sandbox.server ---------------------------------------------------------------


def run_main(argv: list[str]) -> tuple[int, MagicMock]:
    with (
        patch.object(server_main, "port_in_use", return_value=False),
        patch("signal.signal"),
        patch("uvicorn.run") as run,
    ):
        return server_main.main(["--port", "3999", *argv]), run


def protocol_limits(options: Mapping[str, Any]) -> ServeLimits:
    http = options["http"]
    assert isinstance(http, functools.partial) and http.func is DeadlineProtocol
    limits = http.keywords["limits"]
    assert isinstance(limits, ServeLimits)
    return limits


def test_the_server_refuses_a_host_beyond_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    code, run = run_main(["--host", "0.0.0.0"])
    assert code == 2
    assert capsys.readouterr().err == f"Error: {REFUSAL.format(host='0.0.0.0')}\n"
    run.assert_not_called()


def test_exposed_it_limits_connections_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, run = run_main(["--host", "0.0.0.0", "--expose"])
    assert code == 0
    options = run.call_args.kwargs
    assert options["limit_concurrency"] == 128
    assert options["timeout_keep_alive"] == 5
    assert options["h11_max_incomplete_event_size"] == 16 * 1024
    assert protocol_limits(options) == EXPOSED_LIMITS
    assert capsys.readouterr().err == (f"Exposed on 0.0.0.0:3999: {EXPOSED_LIMITS.describe()}\n")


def test_on_loopback_the_deadlines_hold_without_a_connection_limit() -> None:
    code, run = run_main([])
    assert code == 0
    options = run.call_args.kwargs
    assert options["limit_concurrency"] is None
    assert protocol_limits(options) == LOCAL_LIMITS


def test_the_deadlines_can_be_set_and_survive_pickling() -> None:
    code, run = run_main(["--header-timeout", "1.5", "--body-timeout", "2"])
    assert code == 0
    http = run.call_args.kwargs["http"]
    assert protocol_limits(run.call_args.kwargs) == ServeLimits(
        header_timeout_s=1.5, body_timeout_s=2.0
    )
    # uvicorn --workers N sends its config to each worker process by pickling it
    assert pickle.loads(pickle.dumps(http)).keywords == http.keywords


@pytest.mark.parametrize("value", ["0", "-1", "3601", "nan"])
def test_a_deadline_out_of_range_exits_2(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, run = run_main(["--body-timeout", value])
    assert code == 2
    assert capsys.readouterr().err == "Error: --body-timeout must be from 0 to 3600 s\n"
    run.assert_not_called()
