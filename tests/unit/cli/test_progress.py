"""The closing summary of `sandbox run`: the lines read from the result's typed sections."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sandbox.cli.progress import print_run_summary
from sandbox.load.models import LoadModel
from sandbox.results.heap import ObjectType, ProfileInfo, TopObjects
from sandbox.results.model import RunResult
from sandbox.results.releases import MemoryState, ProcessTrim, Released, TrimAnswer, TrimInfo
from sandbox.results.sampling import AgentProcess, PeriodicTrim, SamplerInfo
from sandbox.results.thresholds import ThresholdCheck
from sandbox.units import MIB
from tests.fakes import make_collection, make_result, with_load


def summary_lines(result: RunResult, capsys: pytest.CaptureFixture[str]) -> list[str]:
    print_run_summary(result, Path("/r/run.json"))
    return capsys.readouterr().out.splitlines()


def test_load_model_thresholds_and_harness(capsys: pytest.CaptureFixture[str]) -> None:
    spike = LoadModel(
        "spike", users=16, rate=20.0, duration_s=14.0, spike_x=4.0, spike_at_s=5.0, spike_s=4.0
    )
    result = replace(
        with_load(make_result("glibc"), model=spike, workers=2),
        thresholds=[
            ThresholdCheck("p95_ms", 800.0, 812.0, "ms", "batch 2", False),
            ThresholdCheck("min_rps", 5.0, 12.5, "req/s", "batch 1", True),
            ThresholdCheck("p99_ms", 900.0, None),
        ],
        sampler=SamplerInfo(interval_s=0.1, harness_rss_bytes=30 * MIB),
    )
    lines = summary_lines(result, capsys)
    assert (
        "  load       spike 20/s, ×4 for 4 s at 5 s, 14 s, 5 req/s per user, 2 Locust workers"
        in lines
    )
    assert "  threshold  p95_ms <= 800 ms: 812 FAIL" in lines
    assert "  threshold  min_rps >= 5: 12.5 pass" in lines
    assert "  threshold  p99_ms <= 900 : - no figure" in lines
    assert "  harness    30.0 MiB RSS (this process, at the end)" in lines
    assert lines[-2:] == ["result: /r/run.json", "next:   sandbox plot /r/run.json"]


def test_trim_objects_and_profile(capsys: pytest.CaptureFixture[str]) -> None:
    run = make_result("jemalloc")
    trim = TrimInfo("malloc_trim(0)", 1, {}, {}, Released(None, None), 1.0)
    top = TopObjects(3, [ObjectType("str", 10, 2 * MIB), ObjectType("dict", 4, MIB)], 5.0, 1.0)
    profile = ProfileInfo(capture="/r/memray.bin", flamegraph="/r/f.html", stats_error="boom")
    result = replace(run, trim=trim, objects={"after-idle": top}, profile=profile)
    lines = summary_lines(result, capsys)
    s = run.summary
    assert s.after_trim_rss_bytes is not None
    freed = (s.after_idle_rss_bytes - s.after_trim_rss_bytes) / MIB
    assert (
        f"  trim       RSS {s.after_trim_rss_bytes / MIB:.1f} MiB after trim: "
        f"{freed:.1f} MiB given back"
    ) in lines
    assert "  objects    after-idle: str 2.0 MiB, dict 1.0 MiB" in lines
    assert [line for line in lines if line.startswith("  memray")] == [
        "  memray     flamegraph: /r/f.html"
    ]


STATE = MemoryState("glibc", None, None, None, {}, None, 0)


def test_trim_in_several_processes_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    run = make_result("glibc")
    asked = [
        ProcessTrim(label, TrimAnswer(pid, "malloc_trim(0)", 1, STATE, STATE, Released(0, 0), 1))
        for label, pid in (("main", 10), ("w1", 11), ("w2", 12))
    ]
    result = replace(run, trim=TrimInfo.over(asked, took_ms=4.0))
    [line] = [line for line in summary_lines(result, capsys) if line.startswith("  trim")]
    assert line.endswith(" MiB given back (malloc_trim(0) in 3 processes)")


def test_no_trim_answer_no_trim_line(capsys: pytest.CaptureFixture[str]) -> None:
    lines = summary_lines(replace(make_result("jemalloc"), trim=None), capsys)
    assert not [line for line in lines if line.startswith(("  trim", "  memray", "  objects"))]
    assert not [line for line in lines if line.startswith("  load")]  # the iterations drill


def _trimming(
    label: str, count: int, total_ms: float, max_ms: float, called: str | None = "malloc_trim(0)"
) -> AgentProcess:
    trims = PeriodicTrim(5.0, count, called, total_ms, max_ms, 1.0)
    return AgentProcess(label, 10, "python3", True, 9, periodic_trim=trims)


@pytest.mark.parametrize(
    ("seen", "line"),
    [
        (
            [_trimming("w1", 3, 30.0, 20.0), _trimming("w2", 2, 10.0, 6.0)],
            "5 trims (malloc_trim(0), every 5 s in 2 processes), each 8.0 ms on average, "
            "longest 20.0 ms",
        ),
        ([_trimming("main", 1, 3.0, 3.0)], "1 trim (malloc_trim(0), every 5 s), 3.0 ms"),
        (
            [_trimming("main", 2, 0.2, 0.1, called=None)],
            "2 trims (nothing to call under this allocator, every 5 s), each 0.1 ms on "
            "average, longest 0.1 ms",
        ),
    ],
)
def test_the_periodic_trims_of_every_process_in_one_line(
    seen: list[AgentProcess], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sampler = SamplerInfo(interval_s=0.1, agents=seen)
    lines = summary_lines(replace(make_result("glibc"), sampler=sampler), capsys)
    assert f"  periodic   {line}" in lines


def test_no_periodic_line_without_a_trim_made(capsys: pytest.CaptureFixture[str]) -> None:
    for seen in ([AgentProcess("main", 10)], [_trimming("main", 0, 0.0, 0.0)]):
        quiet = SamplerInfo(interval_s=0.1, agents=seen)
        lines = summary_lines(replace(make_result("glibc"), sampler=quiet), capsys)
        assert not any(line.startswith("  periodic") for line in lines)


def test_a_full_collection_is_one_line_and_absent_without_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = make_result("glibc")
    assert not [line for line in summary_lines(run, capsys) if line.startswith("  gc ")]
    collected = replace(run, collection=make_collection(231.4, 2.5, freed_rss_mib=12.0))
    [line] = [line for line in summary_lines(collected, capsys) if line.startswith("  gc ")]
    assert line == (
        "  gc         a full collection found 1,234,567 unreachable objects and freed 231.4 MiB "
        "of malloc's in use and 2.5 MiB of pymalloc's objects (RSS −12.0 MiB), in 840 ms"
    )
