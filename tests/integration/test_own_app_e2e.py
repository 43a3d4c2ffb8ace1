"""Bring your own app: the example cache service under glibc and jemalloc, served through
`--app module:attr` and through `--cmd ... --ready-url`, driven by its own locustfile."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sandbox.results import files as result_files
from tests.integration.conftest import run_sandbox

pytestmark = pytest.mark.e2e

LOAD = [
    *["--locustfile", "examples/cache_service/locustfile.py", "--tags", "put,get"],
    *["--load", "soak", "--duration", "4", "--users", "4"],
    *["--batches", "1", "--baseline", "0.5", "--idle", "1", "--trim", "0"],
]
APP = "examples.cache_service.app:app"
CMD = f"{sys.executable} -m uvicorn {APP} --host {{host}} --port {{port}}"


@pytest.mark.parametrize("allocator", ["glibc", "jemalloc"])
@pytest.mark.parametrize("how", ["app", "cmd"])
def test_example_app_under_an_allocator(tmp_path: Path, allocator: str, how: str) -> None:
    serve = (
        ["--app", APP]
        if how == "app"
        else ["--cmd", CMD, "--ready-url", "http://127.0.0.1:{port}/health"]
    )

    done = run_sandbox(
        "run", *serve, *LOAD, "--allocator", allocator, "--results-dir", str(tmp_path)
    )

    assert done.returncode == 0, done.stderr
    (path,) = sorted((tmp_path / "runs").glob("*.json"))
    result = result_files.load(path)
    batch = result.load.stats[0]
    assert batch.requests > 100 and batch.failures == 0
    assert result.allocator.verified_loaded
    mapped = " ".join(result.allocator.mapped_libraries)
    assert ("libjemalloc" in mapped) == (allocator == "jemalloc")
    if how == "app":  # the launcher says whose malloc the app calls; a foreign command cannot
        owner = result.allocator.malloc_owner or ""
        assert ("libjemalloc" in owner) if allocator == "jemalloc" else ("libc.so" in owner)
    assert result.server.app == (APP if how == "app" else "cmd")
    # The cache grows with every PUT: memory after the load is well above the baseline.
    s = result.summary
    assert s.end_of_load_rss_bytes > s.baseline_rss_bytes + 5 * 2**20
