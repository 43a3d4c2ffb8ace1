"""`sandbox run` with workers on other machines: the flags reach the spec, the worker command
is printed before anything runs, and options that cannot work are refused before it starts."""

from __future__ import annotations

from pathlib import Path
from unittest.mock import MagicMock, patch

import pytest
from click.testing import CliRunner, Result

from sandbox.cli.main import cli
from sandbox.config.run_spec import RunSpec
from tests.fakes import make_result

REMOTE = (
    *["--server-host", "10.0.0.5", "--expose", "--port", "8080"],
    *["--master-bind", "10.0.0.5:6000", "--expect-remote-workers", "2", "--users", "4"],
)


pytestmark = pytest.mark.usefixtures("keep_sigterm", "repository_config")


def invoke(*args: str) -> tuple[Result, MagicMock]:
    run_once = MagicMock(return_value=(make_result(), Path("/tmp/r.json")))
    with patch("sandbox.measure.runner.run_once", run_once):
        done = CliRunner().invoke(cli, list(args), prog_name="sandbox")
    return done, run_once


def test_remote_workers_reach_the_spec_and_their_command_is_printed(tmp_path: Path) -> None:
    done, run_once = invoke("run", *REMOTE, "--results-dir", str(tmp_path))

    assert done.exit_code == 0, done.output
    spec = run_once.call_args.args[0]
    assert isinstance(spec, RunSpec)
    assert (spec.server.host, spec.server.port, spec.server.expose) == ("10.0.0.5", 8080, True)
    assert (spec.load.master_host, spec.load.master_port) == ("10.0.0.5", 6000)
    assert spec.load.remote_workers == 2
    assert "the master's 10.0.0.5:6000 and the server's 10.0.0.5:8080" in done.output
    command = (
        "  while :; do locust -f plans/locustfile.py --worker --master-host 10.0.0.5 "
        "--master-port 6000; sleep 1; done"
    )
    assert command in done.output.splitlines()


def test_without_the_flags_the_run_stays_on_loopback_and_prints_no_worker_command(
    tmp_path: Path,
) -> None:
    done, run_once = invoke("run", "--results-dir", str(tmp_path))

    assert done.exit_code == 0, done.output
    spec = run_once.call_args.args[0]
    assert (spec.server.host, spec.server.expose, spec.load.master_host) == (
        "127.0.0.1",
        False,
        "127.0.0.1",
    )
    assert "--worker" not in done.output


def test_beyond_loopback_without_expose_is_refused_before_anything_runs(tmp_path: Path) -> None:
    args = [a for a in REMOTE if a != "--expose"]
    done, run_once = invoke("run", *args, "--results-dir", str(tmp_path))

    assert done.exit_code != 0
    assert "--server-host 10.0.0.5 is beyond loopback" in done.output
    run_once.assert_not_called()
