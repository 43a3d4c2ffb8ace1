"""Faults end cleanly: one `Error:` line, exit 1 (130 when interrupted), no process left behind,
and whatever was measured in a readable result marked by its status.

The real `sandbox run` as a subprocess, a real server and real Locust; each test a few seconds.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from sandbox.results import checkpoints
from sandbox.results import files as results_io
from tests.integration.harness import (
    REPO,
    Harness,
    HarnessFactory,
    last_line,
    processes_of_port,
    result_files,
)

pytestmark = pytest.mark.e2e

QUICK = ["--baseline", "0.5", "--idle", "1", "--trim", "0"]
# Enough load to keep a batch busy for ~10 s; the faults end it long before that.
LONG = ["--tags", "tiny", "--iterations", "1000", "--batches", "1", *QUICK]


def assert_clean_exit(run: Harness, port: int, code: int) -> None:
    """The exit code, one line on stderr besides the progress lines, and neither the server nor
    Locust still running."""
    assert run.wait() == code, run.stderr
    assert "Traceback" not in run.stderr
    assert len([line for line in run.stderr.splitlines() if not line.startswith("[")]) == 1
    assert run.survivors() == []
    assert processes_of_port(port) == []


def running(proc: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    return False


def config_with(folder: Path, key: str, value: str) -> Path:
    """A copy of the repository's benchmark.yml with `run.<key>` set to `value`."""
    (folder / "plans").symlink_to(REPO / "plans", target_is_directory=True)
    text, found = re.subn(
        rf"^  {key}: .*$", f"  {key}: {value}", (REPO / "benchmark.yml").read_text(), flags=re.M
    )
    assert found == 1, key
    path = folder / "benchmark.yml"
    path.write_text(text)
    return path


# --- 1. a server that answers nothing ---------------------------------------------------------


def test_server_that_never_answers_health(harness: HarnessFactory, tmp_path: Path) -> None:
    run = harness(["--config", str(config_with(tmp_path, "ready_timeout_s", "2")), *LONG])
    server, port = run.server()
    server.suspend()

    assert_clean_exit(run, port, 1)
    assert last_line(run.stderr).startswith(
        f"Error: the server did not answer http://127.0.0.1:{port}/health within 2 s "
        "(process state T: stopped); its last output: "
    )
    assert last_line(run.stderr).endswith(
        "; if it is only slow to start, raise run.ready_timeout_s in benchmark.yml"
    )
    assert result_files(run.results_dir) == []  # nothing was measured


def test_server_stopped_mid_batch_is_hung(harness: HarnessFactory) -> None:
    run = harness([*LONG, "--hang-timeout", "2"])
    server, port = run.server_under_load()
    run.locust()
    server.suspend()

    assert_clean_exit(run, port, 1)
    [path] = result_files(run.results_dir)
    detail = (
        "the server answered nothing for 2 s during batch-1 (process state T: stopped); "
        "it was killed"
    )
    assert last_line(run.stderr) == f"Error: {detail}; partial result written to {path}"
    result = results_io.load(path)
    assert (result.status, result.status_detail) == ("server-hung", detail)
    assert result.server.exit_code == -signal.SIGKILL
    assert result.samples["rss_bytes"]
    assert result.load.stats == []


# --- 2. Locust dies -----------------------------------------------------------------------------


def test_locust_killed_mid_batch_keeps_the_batches_done(harness: HarnessFactory) -> None:
    two_short_batches = ["--tags", "tiny", "--iterations", "30", "--batches", "2", "--pause", "0"]
    run = harness([*two_short_batches, *QUICK])
    _, port = run.server()
    run.wait_for("batch 2", lambda: "batch 2/2" in run.stderr)
    run.locust().kill()

    assert_clean_exit(run, port, 1)
    [path] = result_files(run.results_dir)
    detail = "Locust was killed by SIGKILL during batch-2"
    assert last_line(run.stderr).startswith(f"Error: {detail}")
    assert last_line(run.stderr).endswith(f"; partial result written to {path}")
    result = results_io.load(path)
    assert result.status == "failed"
    assert result.status_detail.startswith(detail)
    assert [(b.index, b.requests) for b in result.load.stats] == [(1, 30)]


def test_locust_worker_killed_fails_the_batch(harness: HarnessFactory) -> None:
    run = harness([*LONG, "--load-workers", "2"])
    _, port = run.server()
    run.wait_for("a worker", lambda: run.child("--worker"))
    worker = run.child("--worker")
    assert worker is not None
    worker.kill()

    assert_clean_exit(run, port, 1)
    [path] = result_files(run.results_dir)
    detail = "Locust worker 1 was killed by SIGKILL during batch-1"
    assert last_line(run.stderr).startswith(f"Error: {detail}")
    assert results_io.load(path).status == "failed"


def test_a_cmd_listening_beyond_loopback_is_refused(harness: HarnessFactory) -> None:
    app = "examples.cache_service.app:app"
    command = f"{sys.executable} -m uvicorn {app} --host 0.0.0.0 --port {{port}}"
    run = harness(
        [
            *["--cmd", command, "--ready-url", "http://127.0.0.1:{port}/health"],
            *["--locustfile", "examples/cache_service/locustfile.py", "--load", "soak"],
            *["--duration", "2", *QUICK],
        ]
    )

    assert run.wait() == 1
    assert last_line(run.stderr).startswith("Error: the --cmd server listens on 0.0.0.0:")
    assert run.seen_running("uvicorn")  # the server did start, so the next line checks something
    assert run.survivors() == []
    assert result_files(run.results_dir) == []


# --- 3. disk full -------------------------------------------------------------------------------


@contextlib.contextmanager
def full_tmpfs(mountpoint: Path) -> Iterator[None]:
    """A 64 KiB tmpfs at `mountpoint` with a `runs/` folder and no space left; skip if we may
    not mount."""
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mountpoint)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        (mountpoint / "runs").mkdir()
        with open(mountpoint / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 4096)
        yield
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_disk_full_writes_the_result_to_the_fallback_folder(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    with full_tmpfs(tmp_path / "results"):
        run = harness(["--tags", "tiny", "--iterations", "10", "--batches", "1", *QUICK])
        _, port = run.server()
        assert_clean_exit(run, port, 1)
        left = sorted(p.name for p in (run.results_dir / "runs").iterdir())

    assert left == []  # no truncated file, no temporary file
    [spare] = result_files(run.tmpdir / "sandbox-results")
    run_id = spare.name.removesuffix(".json.gz")
    assert last_line(run.stderr) == (
        f"Error: could not write the result to {run.results_dir}/runs/{run_id}.json "
        "(No space left on device); "
        f"it was written to {spare} instead"
    )
    result = results_io.load(spare)
    assert (result.run_id, result.status) == (run_id, "ok")
    assert [b.requests for b in result.load.stats] == [10]


# --- Ctrl-C and SIGTERM -------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_interrupts_and_leaves_no_process(
    harness: HarnessFactory, sig: signal.Signals
) -> None:
    run = harness(LONG)
    _, port = run.server_under_load()
    run.locust()

    run.proc.send_signal(sig)

    assert_clean_exit(run, port, 130)
    [path] = result_files(run.results_dir)
    assert last_line(run.stderr) == f"Interrupted; partial result written to {path}"
    result = results_io.load(path)
    assert (result.status, result.status_detail) == ("interrupted", "interrupted during batch-1")
    assert result.samples["rss_bytes"]


# --- the harness itself killed ------------------------------------------------------------------


def test_harness_killed_mid_batch_leaves_no_process_and_a_checkpoint(
    harness: HarnessFactory,
) -> None:
    run = harness([*LONG, "--load-workers", "1"])
    server, port = run.server_under_load()
    run.wait_for("a worker", lambda: run.child("--worker"))
    locust = [run.child("--master"), run.child("--worker")]
    runs = run.results_dir / "runs"

    def checkpoint_in_batch() -> bool:  # the first is written at once, the next 5 s later
        found = list(runs.glob("*.partial.json"))
        return bool(found) and "batch-1" in [p.name for p in results_io.load(found[0]).phases]

    run.wait_for("a checkpoint during batch-1", checkpoint_in_batch)

    run.proc.kill()
    run.proc.wait()
    time.sleep(2.0)

    # Neither the server, nor Locust's master and worker, nor the reaper is still running.
    for child in [server, *locust]:
        assert child is not None and not running(child), child
    assert run.survivors(timeout_s=0.01) == []
    assert processes_of_port(port) == []
    [path] = result_files(run.results_dir)
    assert path.name.endswith(".partial.json")
    assert results_io.load(path).status == "running"  # until a command finds it
    [settled] = checkpoints.settle([run.results_dir])
    assert settled.path == path
    result = results_io.load(path)
    assert result.status == "harness-died"
    assert result.status_detail.startswith(
        f"the harness (pid {run.proc.pid}) died; this is its last checkpoint, written "
    )
    assert result.status_detail.endswith(" s into the run during batch-1")
    assert result.samples["rss_bytes"] and result.phases[0].name == "baseline"
