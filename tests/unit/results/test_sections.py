"""The typed result sections: each writes the keys the current format writes and reads them
back, and reads what older formats wrote."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sandbox.results.conditions import HostInfo
from sandbox.results.heap import ObjectType, ProfileInfo, TopObjects
from sandbox.results.releases import (
    CollectionInfo,
    MemoryState,
    ProcessTrim,
    Released,
    TrimAnswer,
    TrimInfo,
)
from sandbox.results.sampling import AgentProcess, PeriodicTrim, SamplerInfo
from sandbox.results.shapes import Mismatch, from_plain, to_plain
from sandbox.results.thresholds import ThresholdCheck
from tests.fakes import make_collection


def test_threshold_checks_without_a_figure_have_no_unit_nor_where() -> None:
    checked = ThresholdCheck("p95_ms", 800.0, 812.0, "ms", "batch 2", False)
    assert list(to_plain(checked)) == ["name", "limit", "value", "unit", "where", "passed"]
    assert from_plain(ThresholdCheck, to_plain(checked)) == checked
    unchecked = ThresholdCheck("p95_ms", 800.0, None)
    assert to_plain(unchecked) == {"name": "p95_ms", "limit": 800.0, "value": None, "passed": None}
    assert from_plain(ThresholdCheck, to_plain(unchecked)) == unchecked


def test_a_profile_writes_only_what_it_has() -> None:
    missing = ProfileInfo(overhead="slower", capture="/r/memray.bin", error="no capture")
    assert to_plain(missing) == {
        "tool": "memray",
        "native": True,
        "mode": "aggregate",
        "overhead": "slower",
        "capture": "/r/memray.bin",
        "error": "no capture",
    }
    rendered = ProfileInfo(capture="/r/memray.bin", capture_bytes=10, flamegraph="/r/f.html")
    assert list(to_plain(rendered))[-2:] == ["capture_bytes", "flamegraph"]
    assert from_plain(ProfileInfo, to_plain(rendered)) == rendered


def test_trim_and_objects_round_trip() -> None:
    state = {"allocator": "glibc", "held_bytes": 9, "in_use_bytes": 4, "rss_bytes": 20}
    trim = TrimInfo("malloc_trim(0)", 1, state, {**state, "held_bytes": 5}, Released(4, 2), 0.5)
    assert to_plain(trim)["released"] == {"held_bytes": 4, "rss_bytes": 2}
    assert from_plain(TrimInfo, to_plain(trim)) == trim
    top = TopObjects(limit=2, types=[ObjectType("str", 10, 900)], took_ms=3.0, t_s=12.5)
    assert to_plain(top) == {
        "limit": 2,
        "types": [{"type": "str", "count": 10, "total_bytes": 900}],
        "took_ms": 3.0,
        "t_s": 12.5,
    }
    assert from_plain(TopObjects, to_plain(top)) == top


def test_a_trim_of_several_processes_round_trips_with_its_sums() -> None:
    def asked(label: str, pid: int, rss: tuple[int, int]) -> ProcessTrim:
        before = MemoryState("jemalloc", None, 4, 9, {"stats.active": 8}, None, rss[0])
        after = replace(before, held_bytes=5, rss_bytes=rss[1])
        return ProcessTrim(label, TrimAnswer(pid, 'mallctl("arena.4096.purge")', 0, before, after,
                           Released(4, rss[0] - rss[1]), 1.5))  # fmt: skip

    trim = TrimInfo.over([asked("main", 10, (20, 18)), asked("w1", 11, (50, 40))], took_ms=3.5)
    assert trim.done and trim.called == 'mallctl("arena.4096.purge")' and trim.result is None
    assert trim.after == {"rss_bytes": 58, "held_bytes": 10, "in_use_bytes": 8, "processes": 2}
    assert trim.released == Released(8, 12)
    assert [p["label"] for p in to_plain(trim)["processes"]] == ["main", "w1"]
    assert from_plain(TrimInfo, to_plain(trim)) == trim
    with pytest.raises(ValueError, match="at least one process"):
        TrimInfo.over([], took_ms=0.0)


def test_a_trim_without_a_release_call_is_not_done() -> None:
    state = MemoryState("mimalloc", None, None, None, {}, None, 5)
    nothing = ProcessTrim("main", TrimAnswer(10, None, None, state, state, Released(None, 0), 0.1))
    trim = TrimInfo.over([nothing], took_ms=0.2)
    assert (trim.called, trim.done, trim.result) == (None, False, None)


def test_a_format_3_trim_reads_without_processes() -> None:
    old = {"called": "malloc_trim(0)", "result": 1, "before": {}, "after": {},
           "released": {"held_bytes": None, "rss_bytes": 3}, "took_ms": 1.0}  # fmt: skip
    assert from_plain(TrimInfo, old).processes == []


def test_the_sampler_records_each_process_and_its_agent() -> None:
    seen = [AgentProcess("main", 10, "python3", True, 9, 1, "late"), AgentProcess("w1", 11)]
    sampler = SamplerInfo(interval_s=0.2, agent_injected=True, agents=seen)
    assert to_plain(sampler)["agents"][1] == {
        "label": "w1", "pid": 11, "name": None, "agent": False, "answered": 0, "failed": 0,
        "error": None,
    }  # fmt: skip
    assert from_plain(SamplerInfo, to_plain(sampler)) == sampler
    older = from_plain(SamplerInfo, {"interval_s": 0.2})
    assert (older.agent_injected, older.agents) == (None, [])


def test_a_periodic_trim_is_kept_and_absent_without_one() -> None:
    reading = {"every_s": 5.0, "count": 3, "called": "malloc_trim(0)", "total_ms": 70.5,
               "max_ms": 29.1, "last_ms": 20.0}  # fmt: skip
    trims = from_plain(PeriodicTrim, reading)
    trimming = AgentProcess("main", 10, "python3", True, 9, periodic_trim=trims)
    assert to_plain(trimming)["periodic_trim"] == reading
    assert from_plain(AgentProcess, to_plain(trimming)) == trimming
    assert trimming.trims == 3
    assert "periodic_trim" not in to_plain(AgentProcess("w1", 11))
    assert AgentProcess("w1", 11).trims == 0
    with pytest.raises(Mismatch, match=r"^periodic_trim\.count has value '3'; expected a whole"):
        from_plain(AgentProcess, {**to_plain(trimming), "periodic_trim": {**reading, "count": "3"}})


def test_unknown_keys_are_ignored_and_missing_ones_named() -> None:
    sampler = from_plain(SamplerInfo, {"interval_s": 0.1, "added_later": 1})
    assert sampler == SamplerInfo(interval_s=0.1)
    with pytest.raises(Mismatch, match=r"^interval_s is missing$"):
        from_plain(SamplerInfo, {"source": "psutil"})
    with pytest.raises(Mismatch, match=r"^types is missing$"):
        from_plain(TopObjects, {"limit": 1})


def test_host_reads_the_early_sandbox_key_as_its_version() -> None:
    assert from_plain(HostInfo, {"sandbox": "0.0.9"}).sandbox_version == "0.0.9"
    assert from_plain(HostInfo, {"sandbox_version": "0.3.0", "sandbox": "x"}).sandbox_version == (
        "0.3.0"
    )
    host = HostInfo(python="3.11.7", cpu_count=2, packages={"psutil": "7.2.2"})
    assert from_plain(HostInfo, to_plain(host)) == host


def test_a_collection_round_trips_with_its_sums() -> None:
    collection = make_collection(231.4, 3.0, unreachable=1000)
    written = to_plain(collection)
    assert list(written) == ["unreachable", "freed", "took_ms", "processes"]
    assert written["freed"]["pymalloc_used_bytes"] == 3 * 2**20
    assert from_plain(CollectionInfo, written) == collection
    assert collection.freed_live_bytes == int(231.4 * 2**20) + 3 * 2**20
    assert collection.counts_before() == [650, 4, 1]


def test_a_collection_without_freed_figures_is_refused() -> None:
    with pytest.raises(Mismatch, match=r"^freed is missing$"):
        from_plain(CollectionInfo, {"unreachable": 1, "took_ms": 1.0})
