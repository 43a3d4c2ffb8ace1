"""The verdict names a known truth: a real stair-stepper (pymalloc on, the default) keeping what
it is told to, under glibc and jemalloc, four short batches each (about 18 s a run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.analysis import verdict
from sandbox.results import files as results_io
from tests.integration.conftest import run_sandbox
from tests.integration.harness import result_files

pytestmark = pytest.mark.e2e

SHORT = [
    "--batches", "4", "--pause", "0.5", "--baseline", "1", "--idle", "1", "--trim", "0",
    "--sleep-ms", "2", "--users", "8",
]  # fmt: skip
TRUTHS = {
    # the default workload's bodies, nothing kept: what the allocator keeps grows
    "fragmentation": (["--tags", "medium", "--iterations", "80"], verdict.FREE_KEPT),
    # 30 KiB a request in 256-byte objects: pymalloc's, outside malloc's counters
    "leak of small objects": (
        ["--tags", "tiny", "--iterations", "400", "--leak", "30KiB", "--leak-kind", "small"],
        verdict.LEAK,
    ),
    # the last 380 parsed bodies: full within the first batch, well above the ~10 MiB of free
    # pages jemalloc keeps unpurged a few seconds after a batch
    "bounded cache": (
        ["--tags", "tiny", "--iterations", "400", "--cache-docs", "380"],
        verdict.CACHE,
    ),
}


@pytest.mark.parametrize("allocator", ["glibc", "jemalloc"])
@pytest.mark.parametrize("truth", list(TRUTHS))
def test_the_verdict_names_the_truth(allocator: str, truth: str, tmp_path: Path) -> None:
    args, expected = TRUTHS[truth]
    done = run_sandbox(
        "run", "--allocator", allocator, *SHORT, *args, "--results-dir", str(tmp_path),
        timeout_s=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [path] = result_files(tmp_path)
    result = results_io.load(path)
    assert result.server.pymalloc
    assert "pymalloc_used_bytes" in result.probes
    [found] = verdict.group_verdicts([result])
    assert found.kind == expected, found.line
    assert "the stair read over 4 batches" in done.stdout
