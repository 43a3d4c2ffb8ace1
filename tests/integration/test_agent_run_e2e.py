"""`sandbox run` with the agent in every process of a user's service: examples/cache_service
through --app, through `uvicorn --workers 2` and through gunicorn's UvicornWorker -w 2, under
glibc (and jemalloc for gunicorn): the allocator's counters for every process, a trim of each,
and `sandbox compare`'s verdict over them; a server started without a usable agent says so."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
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


Key = tuple[str, str]
"""A run's target and allocator."""


@dataclass(frozen=True)
class AgentRun:
    """One `sandbox run` of a target under an allocator: its result and its stderr."""

    target: str
    allocator: str
    result: RunResult
    stderr: str


def each(*keys: Key) -> list[object]:
    """`keys` as parameters of the `agent_run` fixture, each in an xdist group of its own, so that
    all the tests of one run go to one worker, which makes that run once, while other workers
    make the other runs. (Under pytest 9.2 with pytest-xdist 3.8.0 the groups do not reach the
    scheduler, xdist issue #1386: a worker makes each run its tests need, once.)"""
    return [
        pytest.param(
            key,
            id=f"{key[0]}-{key[1]}",
            marks=pytest.mark.xdist_group(f"agent-run-{key[0]}-{key[1]}"),
        )
        for key in keys
    ]


@pytest.fixture(scope="session")
def made() -> dict[Key, AgentRun]:
    """The runs made so far in this process, by key (for the session: an xdist worker runs
    other modules' tests between this module's groups, which would end a module's fixture)."""
    return {}


@pytest.fixture
def agent_run(
    request: pytest.FixtureRequest,
    made: dict[Key, AgentRun],
    tmp_path_factory: pytest.TempPathFactory,
) -> AgentRun:
    """The run of `request.param` (target, allocator), made once in this process (each takes
    ~10 s) and shared by the tests that read it."""
    key: Key = request.param
    if key not in made:
        target, allocator = key
        folder = tmp_path_factory.mktemp(f"agent-run-{target}-{allocator}")
        made[key] = AgentRun(target, allocator, *run(TARGETS[target], allocator, folder))
    return made[key]


@pytest.mark.parametrize("agent_run", each(*RUNS), indirect=True)
def test_every_process_has_its_counters_and_is_trimmed(agent_run: AgentRun) -> None:
    target, allocator, result = agent_run.target, agent_run.allocator, agent_run.result
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


@pytest.mark.parametrize(
    "agent_run", each(("uvicorn", "glibc"), ("gunicorn", "glibc")), indirect=True
)
def test_the_progress_line_counts_requests_without_the_servers_stats(agent_run: AgentRun) -> None:
    """With several processes any worker would answer /stats, so it is not asked: the count
    comes from Locust's statistics: its CSV while the batch ran (the line printed as idle
    begins), then the batch's final total (the line printed as the trim begins)."""
    result, stderr = agent_run.result, agent_run.stderr
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


@pytest.mark.parametrize("agent_run", each(*RUNS), indirect=True)
def test_compare_gives_a_verdict_for_each_target(agent_run: AgentRun, tmp_path: Path) -> None:
    result = agent_run.result
    result_files.dump(result, tmp_path / f"{result.run_id}.json")
    done = run_sandbox("compare", str(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if VERDICT.match(line)]
    assert len(lines) == 1, done.stdout
    match = VERDICT.match(lines[0])
    assert match is not None and match["name"] == agent_run.allocator
    print(f"\n{agent_run.target}: {lines[0]}")


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
