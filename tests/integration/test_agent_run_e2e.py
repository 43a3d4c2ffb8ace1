"""`sandbox run` with the agent in every process of a user's service: examples/cache_service
through --app, through `uvicorn --workers 2` and through gunicorn's UvicornWorker -w 2, under
glibc (and jemalloc for gunicorn): the allocator's counters for every process, a trim of each,
and `sandbox compare`'s verdict over them; a server started without a usable agent says so."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from sandbox.results import files as result_files
from sandbox.results.model import RunResult
from tests.integration.conftest import run_sandbox

pytestmark = pytest.mark.e2e

APP = "examples.cache_service.app:app"
LOAD = [
    *["--locustfile", "examples/cache_service/locustfile.py", "--tags", "put,get"],
    *["--load", "soak", "--duration", "3", "--users", "4"],
    *["--batches", "1", "--baseline", "1", "--idle", "1.5", "--trim", "1"],
]
READY = ["--ready-url", "http://{host}:{port}/health"]
TARGETS = {
    "app": ["--app", APP],
    "uvicorn": ["--cmd", f"{sys.executable} -m uvicorn {APP} --host {{host}} --port {{port}} "
                "--workers 2", *READY],
    "gunicorn": ["--cmd", f"{sys.executable} -m gunicorn -k uvicorn.workers.UvicornWorker -w 2 "
                 f"--bind {{host}}:{{port}} {APP}", *READY],
}  # fmt: skip
# The processes each target has, by the probe's labels: uvicorn's supervisor starts
# multiprocessing's resource tracker beside its spawned workers; gunicorn's arbiter forks.
LABELS = {
    "app": {"main"},
    "uvicorn": {"main", "tracker", "w1", "w2"},
    "gunicorn": {"main", "w1", "w2"},
}
RUNS = [("app", "glibc"), ("uvicorn", "glibc"), ("gunicorn", "glibc"), ("gunicorn", "jemalloc")]


def run(serve: list[str], allocator: str, folder: Path) -> tuple[RunResult, str]:
    """`sandbox run` serving as `serve` says: its result, and what it wrote on stderr."""
    done = run_sandbox("run", *serve, *LOAD, "--allocator", allocator, "--results-dir", str(folder))
    assert done.returncode == 0, done.stderr
    (path,) = sorted((folder / "runs").glob("*.json"))
    return result_files.load(path), done.stderr


Runs = dict[tuple[str, str], tuple[RunResult, str]]


@pytest.fixture(scope="module")
def runs_and_output(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Each target's run and its stderr, once for the module (each takes ~10 s)."""
    folder = tmp_path_factory.mktemp("agent-runs")
    return {
        (target, allocator): run(TARGETS[target], allocator, folder / f"{target}-{allocator}")
        for target, allocator in RUNS
    }


@pytest.fixture(scope="module")
def runs(runs_and_output: Runs) -> dict[tuple[str, str], RunResult]:
    return {key: result for key, (result, _) in runs_and_output.items()}


@pytest.mark.parametrize(("target", "allocator"), RUNS)
def test_every_process_has_its_counters_and_is_trimmed(
    runs: dict[tuple[str, str], RunResult], target: str, allocator: str
) -> None:
    result = runs[(target, allocator)]
    assert result.status == "ok", result.status_detail
    assert result.load.stats[0].requests > 50 and result.load.stats[0].failures == 0
    assert result.sampler.agent_injected is True
    seen = {p.label: p for p in result.sampler.agents}
    assert set(seen) == LABELS[target], result.sampler.agents
    assert all(p.agent and p.answered >= 3 for p in seen.values()), result.sampler.agents
    probes = result.probes
    several = len(LABELS[target]) > 1
    for label in LABELS[target] if several else ():
        in_use, held = probes[f"alloc_in_use_bytes_{label}"], probes[f"alloc_held_bytes_{label}"]
        assert 0 < in_use[-1] <= held[-1], (label, in_use[-1], held[-1])
    if several:  # the sums are the sums of the processes' columns, row for row
        for name in ("alloc_in_use_bytes", "alloc_held_bytes"):
            parts = [probes[f"{name}_{label}"] for label in LABELS[target]]
            assert probes[name] == [sum(row) for row in zip(*parts, strict=True)]
    else:
        assert not [n for n in probes if n.startswith("alloc_held_bytes_")]
    s = result.summary
    assert s.held_after_idle_bytes is not None and s.in_use_after_idle_bytes is not None
    trim = result.trim
    assert trim is not None and trim.done
    assert trim.called == (
        "malloc_trim(0)" if allocator == "glibc" else 'mallctl("arena.4096.purge")'
    )
    assert {p.label for p in trim.processes} == LABELS[target]
    for p in trim.processes:
        assert p.answer.called == trim.called
        assert p.answer.released.rss_bytes == p.answer.before.rss_bytes - p.answer.after.rss_bytes
    assert trim.released.rss_bytes == sum(p.answer.released.rss_bytes or 0 for p in trim.processes)
    assert s.after_trim_rss_bytes is not None
    assert "agent" not in result.status_detail  # no process without one, no missed probe


def test_the_progress_line_counts_requests_without_the_servers_stats(
    runs_and_output: Runs,
) -> None:
    """With several processes any worker would answer /stats, so it is not asked: the count
    comes from Locust's statistics: its CSV while the batch ran (the line printed as idle
    begins), then the batch's final total (the line printed as the trim begins)."""
    for target in ("uvicorn", "gunicorn"):
        result, stderr = runs_and_output[(target, "glibc")]
        assert "requests_done" not in result.probes
        total = result.load.stats[0].requests
        assert 0 < requests_shown(stderr, "idle") <= total
        assert requests_shown(stderr, "trim") == total


def requests_shown(stderr: str, phase: str) -> int:
    """The request count on the progress line printed as `phase` began."""
    [line] = [line for line in stderr.splitlines() if f"] {phase} " in line]
    found = re.search(r"requests +(\d+)", line)
    assert found is not None, line
    return int(found[1])


VERDICT = re.compile(
    r"^(?P<label>\S+): RSS grew -?\d+ MiB from baseline to after idle; "
    r"live grew -?\d+ MiB \(malloc's in use -?\d+, pymalloc's objects -?\d+\); "
    r"kept-but-free grew -?\d+ MiB \((?P<name>\w+)'s free -?\d+, pymalloc's free -?\d+\); "
    r"(-?\d+ MiB grew outside malloc \(stacks\); )?"
    r"asking for memory back returned -?\d+ MiB of RSS(; .+)? -> .+$"
)


def test_compare_gives_a_verdict_for_each_target(
    runs: dict[tuple[str, str], RunResult], tmp_path: Path
) -> None:
    for (target, allocator), result in runs.items():
        folder = tmp_path / f"{target}-{allocator}"
        result_files.dump(result, folder / f"{result.run_id}.json")
        done = run_sandbox("compare", str(folder))
        assert done.returncode == 0, done.stderr
        lines = [line for line in done.stdout.splitlines() if VERDICT.match(line)]
        assert len(lines) == 1, done.stdout
        match = VERDICT.match(lines[0])
        assert match is not None and match["name"] == allocator
        print(f"\n{target}: {lines[0]}")


def test_a_server_without_an_agent_says_so_in_one_line(tmp_path: Path) -> None:
    # -E: the interpreter ignores PYTHONPATH, so the agent's sitecustomize is never found.
    cmd = f"{sys.executable} -E -m uvicorn {APP} --host {{host}} --port {{port}}"
    result, stderr = run(["--cmd", cmd, *READY], "glibc", tmp_path)
    said = [line for line in stderr.splitlines() if "has an agent" in line]
    assert said == [
        "note: no process of the server has an agent (not Python, or python -I, -E or -S): "
        "no allocator counters and no trim, RSS only"
    ]
    assert result.sampler.agent_injected is True
    assert [p.agent for p in result.sampler.agents] == [False]
    assert "alloc_held_bytes" not in result.probes and result.trim is None
    assert "trim" not in [p.name for p in result.phases]
    assert (
        "no process of the server had an agent (not Python, or started with python -I, -E or "
        "-S): no allocator counters and no trim, RSS only"
    ) in result.status_detail
    done = run_sandbox("compare", str(tmp_path / "runs"))
    assert "these runs have no allocator counters (the server's processes had no agent: " in (
        done.stdout
    )
    assert "asking for memory back" not in done.stdout
