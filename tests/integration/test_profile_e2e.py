"""`--profile memray` and `--objects` end to end: a short real run under jemalloc."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.allocators import registry as allocators
from sandbox.results import files as result_files
from tests.integration.conftest import run_sandbox

pytestmark = pytest.mark.e2e

SHORT = ["run", "-a", "jemalloc", "--tags", "tiny", "--iterations", "10", "--batches", "1"]
SHORT += ["--baseline", "0.5", "--idle", "1", "--trim", "0.5"]


def test_memray_profile_and_object_summaries(tmp_path: Path) -> None:
    library = allocators.find_library("libjemalloc.so.2")
    if library is None:
        pytest.skip("libjemalloc.so.2 missing: apt-get install libjemalloc2")

    done = run_sandbox(
        *SHORT, "--profile", "memray", "--objects", "--results-dir", str(tmp_path), timeout_s=300
    )

    assert done.returncode == 0, done.stderr
    [path] = sorted((tmp_path / "runs").glob("*.json"))
    result = result_files.load(path)
    # memray wraps the interpreter, and jemalloc still serves malloc
    assert result.server.command[1:4] == ["-m", "memray", "run"]
    assert result.allocator.malloc_owner is not None
    assert os.path.realpath(result.allocator.malloc_owner) == os.path.realpath(library)
    profile = result.profile
    assert profile is not None and profile.overhead
    assert profile.capture_bytes and profile.flamegraph and profile.stats
    html = Path(profile.flamegraph).read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "</html>" in html.lower()
    assert Path(profile.stats).read_text().strip()
    assert Path(profile.flamegraph).parent == path.with_suffix(".memray")
    # pympler's top types at both moments, in phases of their own
    assert set(result.objects) == {"end-of-load", "after-idle"}
    for moment in result.objects.values():
        assert moment.types and moment.types[0].total_bytes > 0 and moment.types[0].type
    names = [p.name for p in result.phases]
    assert names == [
        "baseline", "batch-1", "objects-end-of-load", "idle", "objects-after-idle", "trim",
    ]  # fmt: skip
