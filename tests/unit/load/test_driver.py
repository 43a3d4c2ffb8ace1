from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from sandbox.load.driver import (
    REMOTE_WORKERS_WAIT_S,
    SHAPES,
    locust_command,
    locust_environ,
    master_port,
    remote_worker_command,
    worker_command,
)
from sandbox.load.models import LoadModel
from sandbox.load.spec import LoadSpec

LOCUSTFILE = Path("/repo/plans/locustfile.py")
JSON_PREFIX = Path("/tmp/batch-1/locust")
HOST = "http://127.0.0.1:8123"
DRILL = LoadSpec(
    locustfile=LOCUSTFILE,
    tags=("tiny", "small"),
    spawn_rate=16.0,
    iterations=2500,
    timeout_s=900.0,
)
RATE = replace(DRILL, model=LoadModel("rate", users=8, rate=20.0, duration_s=30.0))


def option(cmd: list[str], name: str) -> str:
    """The value after `name` (which must appear exactly once)."""
    assert cmd.count(name) == 1, cmd
    return cmd[cmd.index(name) + 1]


def test_iterations_command() -> None:
    cmd = locust_command(DRILL, HOST, JSON_PREFIX)
    assert cmd[:3] == [sys.executable, "-m", "locust"]
    assert option(cmd, "-f") == str(LOCUSTFILE)
    assert "--headless" in cmd
    assert option(cmd, "--host") == "http://127.0.0.1:8123"
    assert cmd[cmd.index("--tags") + 1 : cmd.index("--tags") + 3] == ["tiny", "small"]
    assert option(cmd, "--users") == "16"
    assert option(cmd, "--spawn-rate") == "16"
    assert option(cmd, "--iterations") == "2500"
    assert "--no-final-csv" in cmd  # the harness reads --json-file: no wait for a CSV write
    assert option(cmd, "--run-time") == "900s"
    assert option(cmd, "--json-file") == str(JSON_PREFIX)
    assert option(cmd, "--csv") == str(JSON_PREFIX)  # the running count, every second
    assert "--only-summary" in cmd
    assert "--load-model" not in cmd
    assert "--master" not in cmd
    assert "--expect-workers" not in cmd


def test_run_time_is_at_least_one_second() -> None:
    cmd = locust_command(replace(DRILL, timeout_s=0.2), HOST, JSON_PREFIX)
    assert option(cmd, "--run-time") == "1s"


def test_rate_command_adds_the_shape_and_the_model() -> None:
    cmd = locust_command(RATE, HOST, JSON_PREFIX)
    assert option(cmd, "-f") == f"{LOCUSTFILE},{SHAPES}"
    assert SHAPES.name == "shapes.py"
    assert option(cmd, "--load-model") == "rate"
    assert option(cmd, "--rate") == "20"
    assert option(cmd, "--duration") == "30"
    assert option(cmd, "--users") == "8"
    assert float(option(cmd, "--pace")) == RATE.model.pace() == 2.5
    assert "--iterations" not in cmd
    assert option(cmd, "--json-file") == str(JSON_PREFIX)


def test_spike_command_passes_every_model_option() -> None:
    model = LoadModel(
        "spike", users=16, rate=10.0, duration_s=12.0, spike_x=4.0, spike_at_s=4.0, spike_s=4.0
    )
    cmd = locust_command(replace(DRILL, model=model), HOST, JSON_PREFIX)
    got = {name: option(cmd, name) for name in ("--load-model", "--spike-x", "--spike-at")}
    assert got == {"--load-model": "spike", "--spike-x": "4", "--spike-at": "4"}
    assert option(cmd, "--spike-for") == "4"
    assert float(option(cmd, "--pace")) == model.pace()


def test_pace_keeps_six_significant_digits() -> None:
    spec = replace(DRILL, model=LoadModel("rate", users=3, rate=10.0, duration_s=5.0))
    assert option(locust_command(spec, HOST, JSON_PREFIX), "--pace") == "3.33333"


def test_master_command_with_workers() -> None:
    spec = replace(RATE, workers=2)
    cmd = locust_command(spec, HOST, JSON_PREFIX, master_port=5599)
    assert "--master" in cmd
    assert option(cmd, "--master-bind-host") == "127.0.0.1"
    assert option(cmd, "--master-bind-port") == "5599"
    assert option(cmd, "--expect-workers") == "2"
    assert option(cmd, "--json-file") == str(JSON_PREFIX)


def test_a_master_for_remote_workers_binds_where_asked_and_waits_for_them_all() -> None:
    spec = replace(DRILL, workers=1, remote_workers=2, master_host="10.0.0.5", master_port=6000)
    cmd = locust_command(spec, "http://10.0.0.5:8080", JSON_PREFIX, master_port=master_port(spec))
    assert option(cmd, "--master-bind-host") == "10.0.0.5"
    assert option(cmd, "--master-bind-port") == "6000"
    assert option(cmd, "--expect-workers") == "3"  # the local one and the two remote ones
    assert option(cmd, "--expect-workers-max-wait") == f"{REMOTE_WORKERS_WAIT_S:g}"
    assert option(cmd, "--host") == "http://10.0.0.5:8080"  # sent on to every worker


def test_local_workers_wait_a_minute_on_a_free_port() -> None:
    spec = replace(DRILL, workers=2)
    port = master_port(spec)
    assert port is not None and port > 0
    cmd = locust_command(spec, HOST, JSON_PREFIX, master_port=port)
    assert option(cmd, "--expect-workers-max-wait") == "60"
    assert master_port(DRILL) is None  # one Locust process, no master


@pytest.mark.parametrize(
    ("bind", "reached_at"), [("10.0.0.5", "10.0.0.5"), ("0.0.0.0", "127.0.0.1"), ("::", "::1")]
)
def test_a_local_worker_reaches_the_master_where_it_is_bound(bind: str, reached_at: str) -> None:
    cmd = worker_command(replace(DRILL, workers=1, master_host=bind), 6000)
    assert option(cmd, "--master-host") == reached_at


def test_the_remote_worker_command_names_files_from_the_repository_root() -> None:
    cmd = remote_worker_command(replace(RATE, remote_workers=2), "10.0.0.5", 6000)
    assert cmd[0] == "locust"
    assert option(cmd, "-f") == f"plans/locustfile.py,{SHAPES}"  # shapes.py: not under /repo
    assert (option(cmd, "--master-host"), option(cmd, "--master-port")) == ("10.0.0.5", "6000")
    assert "--worker" in cmd
    own = replace(DRILL, locustfile=Path("/home/me/mine.py"), drill=False)
    assert option(remote_worker_command(own, "10.0.0.5", 6000), "-f") == "mine.py"


def test_users_locustfile_gets_no_iterations() -> None:
    spec = replace(DRILL, locustfile=Path("/home/me/mine.py"), drill=False)
    cmd = locust_command(spec, HOST, JSON_PREFIX)
    assert "--iterations" not in cmd
    assert "--no-final-csv" not in cmd  # the user's Locust file would reject it
    assert option(cmd, "-f") == "/home/me/mine.py"


def test_a_distributed_drill_master_waits_for_its_workers_last_reports() -> None:
    cmd = locust_command(replace(DRILL, workers=2), HOST, JSON_PREFIX, master_port=5599)
    assert option(cmd, "--iterations") == "2500"
    assert "--no-final-csv" not in cmd
    assert option(cmd, "--expect-workers") == "2"


def test_worker_command() -> None:
    cmd = worker_command(replace(RATE, workers=2), 5599)
    assert cmd[:3] == [sys.executable, "-m", "locust"]
    assert "--worker" in cmd
    assert option(cmd, "-f") == f"{LOCUSTFILE},{SHAPES}"
    assert option(cmd, "--master-host") == "127.0.0.1"
    assert option(cmd, "--master-port") == "5599"
    assert "--headless" not in cmd
    assert "--master" not in cmd


def test_locust_environ_drops_allocator_and_locust_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "LD_PRELOAD": "libjemalloc.so.2",
        "MALLOC_CONF": "narenas:2",
        "MALLOC_ARENA_MAX": "2",
        "PYTHONMALLOC": "malloc",
        "LOCUST_ITERATIONS": "5",
        "LOCUST_USERS": "100",
        "LOCUST_HOST": "http://example.com",
        "SANDBOX_KEEP_ME": "yes",
        "PYTHONUNBUFFERED": "0",
    }.items():
        monkeypatch.setenv(name, value)
    env = locust_environ()
    assert not [k for k in env if k.startswith("LOCUST_")]
    for name in ("LD_PRELOAD", "MALLOC_CONF", "MALLOC_ARENA_MAX", "PYTHONMALLOC"):
        assert name not in env
    assert env["SANDBOX_KEEP_ME"] == "yes"
    assert env["PYTHONUNBUFFERED"] == "1"


def test_no_locust_in_this_process() -> None:
    assert "locust" not in sys.modules
