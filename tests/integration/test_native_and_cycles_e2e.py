"""The verdict names two causes on services of our own, run through `sandbox run --app`: memory
a C library mallocs per request and never frees (native), and request data dropped in
reference cycles with the collector off (unreachable cycles, measured by --collect-garbage).
Four short batches each, under glibc (about 25 s a run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sandbox.analysis import verdict
from sandbox.results import files as results_io
from sandbox.results.model import RunResult
from sandbox.units import MIB
from tests.integration.conftest import run_sandbox
from tests.integration.harness import result_files

pytestmark = pytest.mark.e2e

SERVICES = "tests.integration.services"
LOAD = [
    *["--locustfile", "tests/integration/services/locustfile.py"],
    *["--load", "soak", "--duration", "1.5", "--users", "2"],
    *["--batches", "4", "--pause", "0.5", "--baseline", "1", "--idle", "1"],
    *["--allocator", "glibc", "--max-rss", "600MiB"],
]  # fmt: skip


def run_app(app: str, tmp_path: Path, *extra: str) -> tuple[RunResult, str]:
    done = run_sandbox(
        "run", "--app", f"{SERVICES}.{app}:app", *LOAD, *extra, "--results-dir", str(tmp_path),
        timeout_s=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [path] = result_files(tmp_path)
    return results_io.load(path), done.stdout


def test_a_per_request_malloc_never_freed_is_native_memory(tmp_path: Path) -> None:
    result, _ = run_app("native_leak_app", tmp_path, "--trim", "0")
    assert result.server.pymalloc and "py_allocated_blocks" in result.probes
    [found] = verdict.group_verdicts([result])
    assert found.kind == verdict.NATIVE, found.line
    grew = re.search(r"native memory: malloc's in use grew (\d+) MiB while Python's objects "
                     r"grew (-?\d+) MiB", found.line)  # fmt: skip
    assert grew is not None, found.line
    s = result.summary
    assert s.in_use_after_idle_bytes is not None and s.in_use_baseline_bytes is not None
    in_use = (s.in_use_after_idle_bytes - s.in_use_baseline_bytes) / MIB
    assert abs(int(grew[1]) - in_use) <= 1 and int(grew[1]) >= 8
    assert int(grew[2]) <= 0.1 * int(grew[1])
    assert "memray run --native" in found.line
    assert result.collection is None  # not asked for


def test_request_data_in_reference_cycles_is_named_with_what_a_collection_frees(
    tmp_path: Path,
) -> None:
    result, stdout = run_app("cycles_app", tmp_path, "--trim", "1", "--collect-garbage")
    collection = result.collection
    assert collection is not None and collection.unreachable > 1000
    assert [p.label for p in collection.processes] == ["main"]
    freed = collection.freed_live_bytes
    assert freed is not None and freed >= 8 * MIB
    [found] = verdict.group_verdicts([result])
    assert found.kind == verdict.CYCLES, found.line
    assert (
        f"unreachable reference cycles: a full collection frees {freed / MIB:.0f} MiB of the "
    ) in found.line
    assert f"({collection.unreachable:,} unreachable objects; generation counts before it " in (
        found.line
    )
    assert "-> not a leak of reachable objects; find the cycle" in found.line
    [line] = [ln for ln in stdout.splitlines() if ln.startswith("  gc ")]
    assert f"a full collection found {collection.unreachable:,} unreachable objects" in line
    # The trim comes after the collection, so it can return what the collection freed.
    assert result.trim is not None and result.trim.done
