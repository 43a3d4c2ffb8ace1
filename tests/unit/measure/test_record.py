"""ResultBuilder: the runner's parts become one RunResult (no server, no Locust)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.allocators import registry as allocators
from sandbox.allocators.registry import Allocator, ResolvedAllocator
from sandbox.config import settings as config
from sandbox.config.run_spec import RunSpec
from sandbox.measure import metadata
from sandbox.measure.record import AgentsSeen, ResultBuilder, Sampled
from sandbox.results import files as result_files
from sandbox.results import summary
from sandbox.results.conditions import HostInfo
from sandbox.results.model import RunResult, Status
from sandbox.results.releases import MemoryState, ProcessTrim, Released, TrimAnswer, TrimInfo
from sandbox.results.sampling import AgentProcess
from sandbox.results.shapes import to_plain
from tests.fakes import make_result

REPO = Path(__file__).resolve().parents[3]
JEMALLOC = ResolvedAllocator(
    Allocator("jemalloc", "libjemalloc.so.2", {"MALLOC_CONF": "narenas:2"}, "libjemalloc2"),
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
)
PURGE = 'mallctl("arena.4096.purge")'
TRIM = TrimInfo.over(
    [
        ProcessTrim("main", TrimAnswer(
            4242, PURGE, 0,
            MemoryState("jemalloc", None, None, 40, {}, None, 90),
            MemoryState("jemalloc", None, None, 25, {}, None, 80),
            Released(15, 10), 2.1,
        ))
    ],
    took_ms=2.5,
)  # fmt: skip
AGENTS = AgentsSeen(True, [AgentProcess("main", 4242, "python3", True, answered=9)])
OBJECTS = {"limit": 15, "types": [{"type": "str", "count": 3, "total_bytes": 300}], "took_ms": 9}


@dataclass(frozen=True)
class FakeServer:
    command: list[str]
    pid: int
    ready_url: str


SERVER = FakeServer(["python", "-m", "sandbox.server"], 4242, "http://127.0.0.1:5000/health")


@pytest.fixture(autouse=True)
def no_machine_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    """No git, no dpkg: the host section and the package version are the fakes'."""
    monkeypatch.setattr(metadata, "collect", lambda root: HostInfo(cpu_count=3))
    monkeypatch.setattr(allocators, "package_version", lambda package: "5.3.0-1")


def spec_with(**options: Any) -> RunSpec:
    bench = config.load_benchmark(REPO / "benchmark.yml")
    return config.build_spec(bench, config.validate_overrides("option", options))


def build(spec: RunSpec, status: Status = "ok", **changes: Any) -> RunResult:
    fake = make_result("jemalloc")
    builder = ResultBuilder(spec, "run-1", root=REPO, started_at="2026-01-01T10:00:00Z")
    builder.allocator_verified(JEMALLOC, [JEMALLOC.path or ""], JEMALLOC.path)
    parts: dict[str, Any] = {
        "status": status,
        "detail": "",
        "notes": [],
        "server": SERVER,
        "env": {"HANDLER": "sync", "LD_PRELOAD": JEMALLOC.path},
        "exit_code": -9,
        "stats": fake.load.stats,
        "sampled": Sampled(fake.samples, fake.probes, fake.phases, 1, 123, None),
        "trim": None,
        "objects": {},
        "profile": None,
        "agents": AGENTS,
    }
    return builder.build(**{**parts, **changes})


def test_the_load_and_its_schedule_are_recorded_as_the_spec_holds_them() -> None:
    spec = spec_with(tags="tiny,small", iterations=7, batches=3, load_workers=0)
    result = build(spec)
    assert result.load.spec == spec.load.relative_to(REPO)
    assert result.load.spec.locustfile == Path("plans/locustfile.py")
    assert result.load.schedule == spec.schedule
    assert to_plain(result.load)["tags"] == ["tiny", "small"]
    assert (result.run_id, result.started_at, result.experiment) == (
        "run-1",
        "2026-01-01T10:00:00Z",
        None,
    )


def test_allocator_server_sampler_and_summary() -> None:
    spec = spec_with(sleep_ms=20, handler="async", interval_s=0.25)
    result = build(spec)
    a = result.allocator
    assert (a.name, a.library, a.env, a.package_version) == (
        "jemalloc",
        JEMALLOC.path,
        {"MALLOC_CONF": "narenas:2"},
        "5.3.0-1",
    )
    assert a.mapped_libraries == [JEMALLOC.path] and a.malloc_owner == JEMALLOC.path
    s = result.server
    assert (s.handler, s.sleep_ms, s.threads, s.pymalloc) == ("async", 20, 40, True)
    assert (s.command, s.pid, s.ready_url) == (SERVER.command, 4242, SERVER.ready_url)
    assert (s.workers, s.app, s.exit_code) == (1, None, None)  # ok: no exit code recorded
    assert (result.sampler.interval_s, result.sampler.probe_interval_s) == (0.25, 1.0)
    assert (result.sampler.decimation, result.sampler.peak_rss_bytes) == (1, 123)
    assert result.sampler.harness_rss_bytes and result.sampler.harness_peak_rss_bytes
    assert result.host == HostInfo(cpu_count=3)
    assert result.summary == summary.compute_summary(
        result.samples, result.phases, None, result.probes
    )


def test_a_dead_server_keeps_its_exit_code_and_the_notes_join_the_detail() -> None:
    result = build(
        spec_with(), "server-died", detail="the server was killed by SIGKILL during batch-2",
        notes=["batch 1 stopped at its 900 s time limit after 3 of 20 requests"],
    )  # fmt: skip
    assert result.server.exit_code == -9
    assert result.status_detail == (
        "the server was killed by SIGKILL during batch-2; "
        "batch 1 stopped at its 900 s time limit after 3 of 20 requests"
    )


def test_the_servers_answers_become_typed_sections() -> None:
    result = build(spec_with(), trim=TRIM, objects={"end-of-load": {**OBJECTS, "t_s": 4.5}})
    assert result.trim == TRIM
    assert result.sampler.agent_injected is True
    assert result.sampler.agents == AGENTS.processes
    assert result.objects["end-of-load"].types[0].total_bytes == 300
    assert result.objects["end-of-load"].t_s == 4.5
    assert result.status_detail == ""


def test_an_answer_not_understood_is_left_out_with_a_note() -> None:
    result = build(spec_with(), objects={"after-idle": {"limit": 3}})
    assert (result.trim, result.objects) == (None, {})
    assert result.status_detail == (
        "the object summary at after-idle is not recorded: types is missing"
    )


def test_thresholds_are_checked_on_the_built_result() -> None:
    result = build(spec_with(p95_ms=1.0, min_rps=0.5))
    assert [(c.name, c.passed) for c in result.thresholds] == [("p95_ms", False), ("min_rps", True)]


def test_the_built_result_survives_the_file(tmp_path: Path) -> None:
    spec = spec_with(batch_timeout_s=60.0)  # not recorded, and not compared
    result = build(spec, trim=TRIM, objects={"end-of-load": {**OBJECTS, "t_s": 1.0}})
    assert result_files.load(result_files.dump(result, tmp_path / "r.json")) == result


def test_build_needs_the_verified_allocator() -> None:
    builder = ResultBuilder(spec_with(), "run-1", root=REPO)
    with pytest.raises(RuntimeError, match="before allocator_verified"):
        builder.build(
            status="ok", detail="", notes=[], server=SERVER, env={}, exit_code=None, stats=[],
            sampled=Sampled({}, {}, [], 1, 0, None), trim=None, objects={}, profile=None,
            agents=AGENTS,
        )  # fmt: skip
