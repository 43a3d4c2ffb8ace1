"""The agent's periodic trim in a real server: with SANDBOX_AGENT_TRIM_EVERY_S set, every
process of gunicorn -w 2 (the arbiter and the workers it forks) trims on its own thread, and
each agent's `memory` reply counts and times its trims."""

from __future__ import annotations

import sys
import time

import pytest

from sandbox.config.run_spec import Target
from sandbox.measure import inject
from sandbox.measure.agent_client import AgentClient
from sandbox.measure.launch import build_environ, launch
from tests.integration.harness import REPO
from tests.integration.test_agent_e2e import Served, tree, wait_for

pytestmark = pytest.mark.e2e

APP = "examples.cache_service.app:app"
GUNICORN = (
    f"{sys.executable} -m gunicorn -k uvicorn.workers.UvicornWorker -w 2 "
    f"--bind {{host}}:{{port}} {APP}"
)


def test_every_process_trims_on_its_own_thread_and_counts_it() -> None:
    with inject.agent_folder() as folder:
        env = build_environ({}, {"SANDBOX_AGENT_TRIM_EVERY_S": "0.2"})
        env = inject.agent_environ(folder, env)
        target = Target(cmd=GUNICORN, ready_url="http://{host}:{port}/health", cwd=REPO)
        with launch(env, target=target, ready_timeout_s=60) as server:
            served = Served(server, AgentClient(folder), None)
            time.sleep(1.0)  # gunicorn forks its workers after it answers
            pids = tree(server)
            wait_for(served, pids)
            time.sleep(1.0)
            readings = {}
            for pid in pids:
                snap = served.client.snapshot(pid)
                assert snap is not None, pid
                readings[pid] = snap.extra["periodic_trim"]
    assert len(readings) == 3
    for pid, reading in readings.items():
        assert reading["every_s"] == 0.2, pid
        assert reading["count"] >= 2, (pid, reading)
        assert reading["called"] == "malloc_trim(0)"
        assert reading["total_ms"] >= reading["max_ms"] > 0
