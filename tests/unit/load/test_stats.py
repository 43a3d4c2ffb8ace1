from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import LoadError
from sandbox.load.stats import BatchStats, percentile, read_entries, summarise

# Two request names as Locust's --json-file lists them (after a JSON round trip every dict key
# is a string). Wall-clock seconds: the batch started at epoch 999.5, which is run time 5.0 s.
TINY: dict[str, Any] = {
    "name": "/widgets [tiny]",
    "method": "POST",
    "num_requests": 6,
    "num_failures": 1,
    "start_time": 1000.2,
    "last_request_timestamp": 1002.7,
    "max_response_time": 120.5,
    "response_times": {10: 4, 100: 2},
    "num_reqs_per_sec": {1000: 2, 1001: 3, 1002: 1},
    "num_fail_per_sec": {1001: 1},
}
SMALL: dict[str, Any] = {
    "name": "/widgets [small]",
    "method": "POST",
    "num_requests": 4,
    "num_failures": 0,
    "start_time": 1000.7,
    "last_request_timestamp": 1003.2,
    "max_response_time": 250.0,
    "response_times": {20: 3, 250: 1},
    "num_reqs_per_sec": {1001: 1, 1003: 3},
    "num_fail_per_sec": {},
}
# A name Locust registered but never completed: it must not move the first/last timestamps.
IDLE: dict[str, Any] = {
    "name": "/other",
    "num_requests": 0,
    "num_failures": 0,
    "start_time": 900.0,
    "last_request_timestamp": None,
    "max_response_time": 0,
    "response_times": {},
    "num_reqs_per_sec": {},
    "num_fail_per_sec": {},
}


def write_json(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "locust.json"
    path.write_text(json.dumps(data))
    return path


def summarise_entries(entries: list[dict[str, Any]]) -> BatchStats:
    return summarise(entries, index=2, start_s=5.0, end_s=9.25, epoch_at_start=999.5, exit_code=0)


@pytest.mark.parametrize(
    ("histogram", "expected"),
    [
        ({10: 90, 100: 10}, (10, 100, 100)),
        ({5: 50, 7: 50}, (7, 7, 7)),
        ({1: 95, 2: 4, 3: 1}, (1, 2, 3)),
        ({1: 98, 50: 2}, (1, 1, 50)),
        ({42: 1}, (42, 42, 42)),
    ],
)
def test_percentile_follows_locusts_rule(
    histogram: dict[int, int], expected: tuple[int, int, int]
) -> None:
    total = sum(histogram.values())
    got = tuple(percentile(histogram, total, f) for f in (0.50, 0.95, 0.99))
    assert got == expected


def test_percentile_of_nothing_is_zero() -> None:
    assert percentile({}, 0, 0.95) == 0


def test_summarise_two_entries_totals_and_percentiles() -> None:
    stats = summarise_entries([TINY, SMALL])
    assert (stats.index, stats.start_s, stats.end_s, stats.exit_code) == (2, 5.0, 9.25, 0)
    assert (stats.requests, stats.failures) == (10, 1)
    # Merged histogram {10: 4, 20: 3, 100: 2, 250: 1}.
    assert (stats.p50_ms, stats.p95_ms, stats.p99_ms) == (20, 250, 250)
    assert stats.max_ms == 250.0
    assert stats.by_plan == {"tiny": 6, "small": 4}


def test_summarise_rps_is_requests_over_first_to_last_timestamp() -> None:
    # 10 requests from 1000.2 (earliest start) to 1003.2 (latest last request).
    assert summarise_entries([TINY, SMALL]).rps == round(10 / 3.0, 3)
    assert summarise_entries([TINY, SMALL, IDLE]).rps == round(10 / 3.0, 3)
    assert summarise_entries([TINY]).rps == round(6 / 2.5, 3)


def test_summarise_timeline_is_merged_and_shifted_to_run_time() -> None:
    stats = summarise_entries([TINY, SMALL])
    # Epoch second s -> s - 999.5 + 5.0.
    assert stats.timeline_t_s == [5.5, 6.5, 7.5, 8.5]
    assert stats.timeline_requests == [2, 4, 1, 3]
    assert stats.timeline_failures == [0, 1, 0, 0]


def test_summarise_reads_string_keys_from_json(tmp_path: Path) -> None:
    path = write_json(tmp_path, [TINY, SMALL, IDLE])
    entries = read_entries(path)
    assert list(entries[0]["response_times"]) == ["10", "100"]
    assert summarise_entries(entries) == summarise_entries([TINY, SMALL, IDLE])


def test_summarise_a_name_without_a_plan_is_not_in_by_plan() -> None:
    stats = summarise_entries([TINY, IDLE])
    assert stats.by_plan == {"tiny": 6}
    assert stats.requests == 6


def test_summarise_nothing_completed() -> None:
    stats = summarise_entries([IDLE])
    assert (stats.requests, stats.rps, stats.p95_ms, stats.max_ms) == (0, 0.0, 0, 0.0)
    assert stats.timeline_t_s == []
    assert summarise_entries([]).requests == 0


def test_entries_read_from_a_file_summarise_alike(tmp_path: Path) -> None:
    path = write_json(tmp_path, [TINY, SMALL])
    stats = summarise(
        read_entries(path), index=2, start_s=5.0, end_s=9.25, epoch_at_start=999.5, exit_code=0
    )
    assert stats == summarise_entries([TINY, SMALL])


def test_read_entries_skips_what_is_not_an_entry(tmp_path: Path) -> None:
    path = write_json(tmp_path, [TINY, "junk", 3, None])
    assert [e["name"] for e in read_entries(path)] == ["/widgets [tiny]"]


def test_read_entries_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "locust.json"
    with pytest.raises(LoadError) as info:
        read_entries(path)
    assert str(info.value) == f"Locust wrote no statistics ({path} is missing)"


def test_read_entries_not_a_list(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"requests": 3})
    with pytest.raises(LoadError) as info:
        read_entries(path)
    assert str(info.value) == f"Locust's statistics are not a list of entries: {path}"


def test_read_entries_not_json(tmp_path: Path) -> None:
    path = tmp_path / "locust.json"
    path.write_text("[{")
    with pytest.raises(LoadError) as info:
        read_entries(path)
    assert str(info.value).startswith(f"Locust's statistics are unreadable ({path}: ")
