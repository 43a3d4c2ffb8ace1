"""`sandbox run` end to end: the real CLI as a subprocess, a real server, real Locust.

Each run is a few seconds: one tiny batch, half a second of baseline, one second of idle.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from sandbox.allocators import registry as allocators
from sandbox.results import files as results_io
from sandbox.results import summary
from sandbox.results.model import RunResult
from tests.integration.conftest import run_sandbox
from tests.integration.harness import (
    REPO,
    HarnessFactory,
    last_line,
    processes_of_port,
    result_files,
)

pytestmark = pytest.mark.e2e

ITERATIONS = 10
TAGS = ("tiny", "small")
QUICK = ["--batches", "1", "--baseline", "0.5", "--idle", "1", "--trim", "0.5"]
# Enough load to keep a batch busy for ~10 s; the fault tests end it long before that.
LONG = ["--tags", "tiny", "--iterations", "1000", *QUICK]


def sandbox(*args: str) -> subprocess.CompletedProcess[str]:
    return run_sandbox(*args)


def only_result(results_dir: Path) -> tuple[Path, RunResult]:
    files = result_files(results_dir)
    assert len(files) == 1, files
    assert files[0].parent == results_dir / "runs"
    return files[0], results_io.load(files[0])


def write_config(folder: Path, extra: str = "", replace: tuple[str, str] = ("", "")) -> Path:
    """A copy of the repository's benchmark.yml (plans reachable beside it), edited."""
    (folder / "plans").symlink_to(REPO / "plans", target_is_directory=True)
    text = (REPO / "benchmark.yml").read_text()
    if replace[0]:
        assert replace[0] in text
        text = text.replace(replace[0], replace[1], 1)
    path = folder / "benchmark.yml"
    path.write_text(text + extra)
    return path


# --- the four allocators --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["glibc", "jemalloc", "mimalloc", "tcmalloc"])
def test_run_under_each_allocator(name: str, tmp_path: Path) -> None:
    allocator = allocators.BUILTIN[name]
    library = None
    if allocator.library is not None:
        library = allocators.find_library(allocator.library)
        if library is None:
            pytest.skip(f"{allocator.library} is missing: apt-get install {allocator.package}")

    done = sandbox(
        "run",
        "--allocator",
        name,
        "--tags",
        ",".join(TAGS),
        "--iterations",
        str(ITERATIONS),
        *QUICK,
        "--results-dir",
        str(tmp_path),
    )

    assert done.returncode == 0, done.stderr
    assert "Error" not in done.stderr
    path, result = only_result(tmp_path)
    assert f"result: {path}\n" in done.stdout
    assert (result.status, result.status_detail) == ("ok", "")
    info = result.allocator
    assert info.name == name
    assert info.verified_loaded is True
    assert info.library == library
    if library is None:
        assert info.mapped_libraries == []
        assert "LD_PRELOAD" not in result.server.env
    else:
        assert info.library is not None
        assert os.path.realpath(info.library) == os.path.realpath(library)
        mapped = {os.path.realpath(p) for p in info.mapped_libraries}
        assert os.path.realpath(library) in mapped
        assert result.server.env["LD_PRELOAD"] == library
    assert result.server.exit_code is None
    assert [p.name for p in result.phases] == ["baseline", "batch-1", "idle", "trim"]
    # malloc itself is served by the library under test (dladdr inside the server)
    assert info.malloc_owner is not None
    if library is None:
        assert os.path.basename(info.malloc_owner).startswith("libc.so")
    else:
        assert os.path.realpath(info.malloc_owner) == os.path.realpath(library)
    # the allocator's own view was sampled beside RSS, and trim asked it for memory back
    assert "alloc_held_bytes" in result.probes
    assert ("alloc_in_use_bytes" in result.probes) == (name != "mimalloc")
    assert result.summary.held_after_idle_bytes is not None
    assert result.trim is not None and result.trim.called
    assert result.summary.after_trim_rss_bytes is not None
    [batch] = result.load.stats
    assert (batch.requests, batch.failures) == (ITERATIONS * len(TAGS), 0)
    assert batch.by_plan == dict.fromkeys(TAGS, ITERATIONS)
    assert batch.exit_code == 0
    assert result.samples["rss_bytes"]
    assert result.summary == summary.compute_summary(
        result.samples, result.phases, result.summary.vmhwm_bytes, result.probes
    )


# --- allocator and start-up errors: one line, nothing measured ---------------------------------


def test_wrong_library_path_exits_1_with_one_line(tmp_path: Path) -> None:
    # A custom entry replaces the built-in of the same name whole: it has no Debian package,
    # so the message can only point at benchmark.yml.
    config = write_config(
        tmp_path, "allocators:\n  jemalloc:\n    library: /nonexistent/libjemalloc.so.2\n"
    )

    done = sandbox(
        "run", "-a", "jemalloc", "--config", str(config), "--results-dir", str(tmp_path / "out")
    )

    assert done.returncode == 1
    assert done.stderr == (
        "Error: jemalloc: library /nonexistent/libjemalloc.so.2 not found; install it with "
        "'apt-get install libjemalloc2' or fix allocators.jemalloc.library in benchmark.yml\n"
    )
    assert done.stdout == ""
    assert not (tmp_path / "out").exists()


def test_a_preloaded_library_that_is_not_an_allocator_is_refused(tmp_path: Path) -> None:
    libz = allocators.find_library("libz.so.1")
    if libz is None:
        pytest.skip("libz.so.1 not found")
    config = write_config(tmp_path, f"allocators:\n  zlib:\n    library: {libz}\n")

    done = sandbox(
        "run", "-a", "zlib", "--config", str(config), "--results-dir", str(tmp_path / "out")
    )

    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(f"Error: zlib: {libz} is loaded but the server's malloc comes from ")
    assert line.endswith("that library does not replace malloc, so the run would measure libc.so.6")
    assert not list((tmp_path / "out").rglob("*.json*"))  # refused: nothing reported


def test_busy_port_exits_1_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = sandbox("run", "--port", str(port), "--results-dir", str(tmp_path))
        assert processes_of_port(port) == []  # no server was left trying to bind it

    assert done.returncode == 1
    assert done.stderr == (
        f"Error: port {port} on 127.0.0.1 is in use; stop the other server or omit --port "
        "to let the sandbox pick a free one\n"
    )
    assert result_files(tmp_path) == []


USAGE = ["Usage: sandbox run [OPTIONS]", "Try 'sandbox run --help' for help.", ""]


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        (
            "--tags",
            "huge",
            "Error: tag 'huge' matches no plan in benchmark.yml; "
            "available: large, medium, small, tiny",
        ),
        (
            "--handler",
            "threads",
            "Error: Invalid value for '--handler': 'threads' is not one of 'sync', 'async'.",
        ),
        (
            "--max-rss",
            "lots",
            "Error: Invalid value for '--max-rss': 'lots' is not a size such as 2GiB, 800MiB or "
            "1500000000",
        ),
    ],
    ids=["tags", "handler", "max-rss"],
)
def test_bad_option_exits_2(option: str, value: str, error: str, tmp_path: Path) -> None:
    done = sandbox("run", option, value, "--results-dir", str(tmp_path))

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [*USAGE, error]
    assert done.stdout == ""
    assert result_files(tmp_path) == []


def test_misspelt_config_key_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, replace=("concurrency: 16", "concurency: 4"))

    done = sandbox("run", "--config", str(config), "--results-dir", str(tmp_path / "out"))

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        *USAGE,
        f"Error: {config}: unknown key 'concurency' (did you mean 'concurrency'?)",
    ]
    assert not (tmp_path / "out").exists()


# --- faults during a run: a partial result says what happened ---------------------------------


def test_server_killed_mid_batch(harness: HarnessFactory) -> None:
    run = harness(LONG)
    server, port = run.server_under_load()
    run.locust()

    server.send_signal(signal.SIGKILL)
    code = run.wait()

    assert code == 1, run.stderr
    [path] = result_files(run.results_dir)
    assert last_line(run.stderr) == (
        f"Error: the server was killed by SIGKILL during batch-1; partial result written to {path}"
    )
    result = results_io.load(path)
    assert result.status == "server-died"
    assert result.status_detail == "the server was killed by SIGKILL during batch-1"
    assert result.server.exit_code == -9
    assert result.server.pid == server.pid
    assert result.samples["rss_bytes"]
    assert result.load.stats == []  # the batch never finished
    assert run.survivors() == []  # Locust was stopped too
    assert processes_of_port(port) == []


def test_memory_cap_stops_the_server(tmp_path: Path) -> None:
    done = sandbox(
        "run",
        "--tags",
        "medium",
        "--iterations",
        "300",
        *QUICK,
        "--max-rss",
        "60MiB",
        "--results-dir",
        str(tmp_path),
    )

    assert done.returncode == 1, done.stderr
    path, result = only_result(tmp_path)
    assert last_line(done.stderr) == (
        "Error: the server's RSS passed --max-rss 60 MiB during batch-1; it was stopped; "
        f"partial result written to {path}"
    )
    assert result.status == "memory-cap"
    assert result.server.exit_code == -9
    assert result.summary.peak_rss_bytes > 60 * 2**20
