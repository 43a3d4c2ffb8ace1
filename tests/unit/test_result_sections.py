"""The typed result sections: each writes the keys format 3 writes and reads them back."""

from __future__ import annotations

import pytest

from sandbox.errors import ResultFormatError
from sandbox.result_sections import (
    HostInfo,
    ObjectType,
    ProfileInfo,
    Released,
    SamplerInfo,
    ThresholdCheck,
    TopObjects,
    TrimInfo,
)


def test_threshold_checks_without_a_figure_have_no_unit_nor_where() -> None:
    checked = ThresholdCheck("p95_ms", 800.0, 812.0, "ms", "batch 2", False)
    assert list(checked.to_dict()) == ["name", "limit", "value", "unit", "where", "passed"]
    assert ThresholdCheck.from_dict(checked.to_dict()) == checked
    unchecked = ThresholdCheck("p95_ms", 800.0, None)
    assert unchecked.to_dict() == {"name": "p95_ms", "limit": 800.0, "value": None, "passed": None}
    assert ThresholdCheck.from_dict(unchecked.to_dict()) == unchecked


def test_a_profile_writes_only_what_it_has() -> None:
    missing = ProfileInfo(overhead="slower", capture="/r/memray.bin", error="no capture")
    assert missing.to_dict() == {
        "tool": "memray",
        "native": True,
        "mode": "aggregate",
        "overhead": "slower",
        "capture": "/r/memray.bin",
        "error": "no capture",
    }
    rendered = ProfileInfo(capture="/r/memray.bin", capture_bytes=10, flamegraph="/r/f.html")
    assert list(rendered.to_dict())[-2:] == ["capture_bytes", "flamegraph"]
    assert ProfileInfo.from_dict(rendered.to_dict()) == rendered


def test_trim_and_objects_round_trip() -> None:
    state = {"allocator": "glibc", "held_bytes": 9, "in_use_bytes": 4, "rss_bytes": 20}
    trim = TrimInfo("malloc_trim(0)", 1, state, {**state, "held_bytes": 5}, Released(4, 2), 0.5)
    assert trim.to_dict()["released"] == {"held_bytes": 4, "rss_bytes": 2}
    assert TrimInfo.from_dict(trim.to_dict()) == trim
    top = TopObjects(limit=2, types=[ObjectType("str", 10, 900)], took_ms=3.0, t_s=12.5)
    assert top.to_dict() == {
        "limit": 2,
        "types": [{"type": "str", "count": 10, "total_bytes": 900}],
        "took_ms": 3.0,
        "t_s": 12.5,
    }
    assert TopObjects.from_dict(top.to_dict()) == top


def test_unknown_keys_are_ignored_and_missing_ones_named() -> None:
    sampler = SamplerInfo.from_dict({"interval_s": 0.1, "added_later": 1})
    assert sampler == SamplerInfo(interval_s=0.1)
    with pytest.raises(ResultFormatError, match=r"^SamplerInfo: .*interval_s"):
        SamplerInfo.from_dict({"source": "psutil"})
    with pytest.raises(ResultFormatError, match=r"^TopObjects: 'types' must be a list$"):
        TopObjects.from_dict({"limit": 1})


def test_host_reads_the_early_sandbox_key_as_its_version() -> None:
    assert HostInfo.from_dict({"sandbox": "0.0.9"}).sandbox_version == "0.0.9"
    assert HostInfo.from_dict({"sandbox_version": "0.3.0", "sandbox": "x"}).sandbox_version == (
        "0.3.0"
    )
    host = HostInfo(python="3.11.7", cpu_count=2, packages={"psutil": "7.2.2"})
    assert HostInfo.from_dict(host.to_dict()) == host
