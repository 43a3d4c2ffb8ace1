"""The growth read on a real stair-stepper under glibc, six short batches each (about 15 s a run):
a leak climbs along a straight line, a bounded cache levels off, fragmentation levels off or
slows; and fitted without the last batch, the forecast's interval holds that batch."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sandbox.analysis import stair_read, stairs
from sandbox.results import files as results_io
from tests.integration.conftest import run_sandbox
from tests.integration.harness import result_files

pytestmark = pytest.mark.e2e

BATCHES = 6
SHORT = [
    "--batches", str(BATCHES), "--pause", "0.3", "--baseline", "1", "--idle", "1", "--trim", "0",
    "--sleep-ms", "2", "--users", "8",
]  # fmt: skip
TRUTHS = {
    # 30 KiB a request kept for good, in 256-byte objects: live grows the same each batch
    "leak": (
        ["--tags", "tiny", "--iterations", "300", "--leak", "30KiB"],
        "live",
        {"climbing"},
    ),
    # the last 450 parsed bodies: full within the second batch of 300
    "cache": (["--tags", "tiny", "--iterations", "300", "--cache-docs", "450"], "live", {"levels"}),
    # the default workload's bodies, nothing kept: the allocator's free memory settles
    "fragmentation": (
        ["--tags", "medium", "--iterations", "60"],
        "kept-but-free",
        {"levels", "slowing"},
    ),
}


@pytest.mark.parametrize("truth", list(TRUTHS))
def test_the_growth_read_names_the_truth_and_forecasts_the_last_batch(
    truth: str, tmp_path: Path
) -> None:
    args, quantity, expected = TRUTHS[truth]
    done = run_sandbox(
        "run", "--allocator", "glibc", *SHORT, *args, "--results-dir", str(tmp_path),
        timeout_s=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [path] = result_files(tmp_path)
    whole = stairs.stairs(results_io.load(path))
    assert whole is not None and len(whole.steps) == BATCHES
    read = stair_read.read([whole], quantity)
    assert read is not None
    assert read.state in expected, read.answer()
    if truth == "leak":
        assert read.model == "linear", read.answer()
    assert f"  {quantity}: " in done.stdout
    last = whole.steps[-1]
    before = stair_read.read([replace(whole, steps=whole.steps[:-1])], quantity)
    value = last.value(quantity)
    assert before is not None and before.forecaster is not None and value is not None
    band = before.forecaster.band(float(last.requests))
    assert band.low <= value <= band.high, (band, value, before.answer())
