"""`sandbox advise` for real: two cheap arms (glibc and glibc-arena2) on tiny bodies with
--host-cores 8 and a small budget: the race stops, prints the ranked table and the deploy
lines, and each server's environment holds what --host-cores says (MALLOC_ARENA_MAX=64 for
glibc, the arm's own 2 for glibc-arena2); `sandbox run --host-cores 8` under jemalloc sets
narenas:32."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sandbox.results import files as result_files
from tests.integration.conftest import run_sandbox

pytestmark = pytest.mark.e2e

CHEAP = [
    *["--tags", "tiny", "--iterations", "25", "--users", "4", "--sleep-ms", "0"],
    *["--batches", "1", "--baseline", "0.5", "--idle", "1", "--trim", "0", "--pause", "0"],
]


def test_a_race_of_two_cheap_arms_stops_within_its_budget(tmp_path: Path) -> None:
    started = time.monotonic()
    done = run_sandbox(
        "advise",
        *["--arms", "glibc,glibc-arena2", "--host-cores", "8", "--budget", "40s"],
        *["--max-rounds", "4", *CHEAP, "--results-dir", str(tmp_path)],
    )
    took = time.monotonic() - started

    assert done.returncode == 0, done.stderr
    assert took < 60
    (folder,) = tmp_path.glob("advise-*")
    race = json.loads((folder / "race.json").read_text())
    assert race["stopped"]
    assert 2 <= len(race["rounds"]) <= 4
    assert "| rank | arm | runs | after-idle MiB | after-idle | peak | throughput | p95 |" in (
        done.stdout
    )
    assert "host_cores=8: glibc arms MALLOC_ARENA_MAX=64" in done.stdout
    assert (
        "\nDeploy it:\n" in done.stdout
        or "nothing to deploy" in done.stdout
        or "No remedy is clearly better than glibc" in done.stdout
    )
    assert (folder / "advice.md").read_text().strip() in done.stdout
    envs = {}
    for path in folder.glob("*.json"):
        if path.name in ("race.json", "experiment.json"):
            continue
        r = result_files.load(path)
        envs[r.allocator.name] = r.server.env
        assert r.parameters == {"host_cores": 8}
    assert envs["glibc"]["MALLOC_ARENA_MAX"] == "64"
    assert envs["glibc-arena2"]["MALLOC_ARENA_MAX"] == "2"


def test_run_host_cores_sets_jemallocs_narenas_in_the_servers_environment(
    tmp_path: Path,
) -> None:
    done = run_sandbox(
        "run", "--allocator", "jemalloc", "--host-cores", "8", *CHEAP,
        "--results-dir", str(tmp_path),
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    (path,) = (tmp_path / "runs").glob("*.json")
    result = result_files.load(path)
    assert result.server.env["MALLOC_CONF"] == "narenas:32"
    assert "MALLOC_ARENA_MAX" not in result.server.env
    assert result.parameters == {"host_cores": 8}


def test_a_run_with_the_periodic_trim_keeps_each_trims_figures(tmp_path: Path) -> None:
    """The periodic-trim arm's mechanism in a plain run (an allocator of the config file whose
    environment asks the agent for a trim every 0.3 s): the result keeps how many trims the
    agent made and how long they took, and the summary says so."""
    config = tmp_path / "benchmark.yml"
    config.write_text(
        "allocators:\n  glibc-trim-fast:\n    env: {SANDBOX_AGENT_TRIM_EVERY_S: '0.3'}\n"
    )
    done = run_sandbox(
        "run", "--config", str(config), "--allocator", "glibc-trim-fast", *CHEAP,
        "--results-dir", str(tmp_path),
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    (path,) = (tmp_path / "runs").glob("*.json")
    (main,) = result_files.load(path).sampler.agents
    reading = main.periodic_trim
    assert reading is not None and reading.called == "malloc_trim(0)"
    assert reading.every_s == 0.3 and main.trims >= 2
    assert reading.total_ms >= reading.max_ms > 0
    assert f"  periodic   {main.trims} trims (malloc_trim(0), every 0.3 s), each " in done.stdout
