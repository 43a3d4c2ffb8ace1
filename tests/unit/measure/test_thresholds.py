from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sandbox.cli.flags import THRESHOLD
from sandbox.config import settings as config
from sandbox.errors import ConfigError
from sandbox.load.stats import BatchStats
from sandbox.measure.thresholds import check_thresholds, failed, parse_thresholds
from sandbox.results import files as result_files
from sandbox.results.model import RunResult
from sandbox.results.shapes import to_plain
from sandbox.units import MIB

DATA = Path(__file__).resolve().parents[2] / "data"
FLAG = THRESHOLD.name


def batch(
    index: int, *, p95: float, p99: float, rps: float, requests: int, failures: int
) -> BatchStats:
    return BatchStats(
        index=index,
        start_s=10.0 * index,
        end_s=10.0 * index + 8.0,
        requests=requests,
        failures=failures,
        rps=rps,
        p50_ms=p95 / 2,
        p95_ms=p95,
        p99_ms=p99,
        max_ms=p99 + 10.0,
    )


BATCHES = [
    batch(1, p95=420.0, p99=990.0, rps=41.5, requests=400, failures=2),
    batch(2, p95=812.0, p99=900.0, rps=38.0, requests=300, failures=3),
    batch(3, p95=500.0, p99=700.0, rps=45.0, requests=300, failures=0),
]


@pytest.fixture(scope="module")
def golden() -> RunResult:
    return result_files.load(DATA / "result_v3.json.gz")


@pytest.fixture
def run(golden: RunResult) -> RunResult:
    """The golden run with three batches; memory as RSS only (no PSS sums)."""
    summary = replace(
        golden.summary,
        baseline_rss_bytes=100 * MIB,
        peak_rss_bytes=300 * MIB,
        after_idle_rss_bytes=160 * MIB,
        baseline_pss_bytes=None,
        peak_pss_bytes=None,
        after_idle_pss_bytes=None,
    )
    return replace(golden, load=replace(golden.load, stats=BATCHES), summary=summary)


def by_name(limits: dict[str, float], result: RunResult) -> dict[str, dict[str, object]]:
    """Each check as the result file records it, by name."""
    return {c.name: to_plain(c) for c in check_thresholds(limits, result)}


def test_p95_and_p99_use_the_worst_batch(run: RunResult) -> None:
    checks = by_name({"p95_ms": 800.0, "p99_ms": 1000.0}, run)
    assert checks["p95_ms"] == {
        "name": "p95_ms",
        "limit": 800.0,
        "value": 812.0,
        "unit": "ms",
        "where": "batch 2",
        "passed": False,
    }
    assert checks["p99_ms"] == {
        "name": "p99_ms",
        "limit": 1000.0,
        "value": 990.0,
        "unit": "ms",
        "where": "batch 1",
        "passed": True,
    }


def test_a_value_equal_to_the_limit_passes(run: RunResult) -> None:
    checks = by_name({"p95_ms": 812.0, "min_rps": 38.0, "error_rate": 0.005}, run)
    assert [c["passed"] for c in checks.values()] == [True, True, True]


def test_error_rate_is_over_all_batches(run: RunResult) -> None:
    checks = by_name({"error_rate": 0.001}, run)
    assert checks["error_rate"]["value"] == 5 / 1000
    assert checks["error_rate"]["unit"] == ""
    assert checks["error_rate"]["where"] == "all batches"
    assert checks["error_rate"]["passed"] is False
    assert by_name({"error_rate": 0.01}, run)["error_rate"]["passed"] is True


def test_min_rps_is_the_slowest_batch_at_least_the_limit(run: RunResult) -> None:
    low = by_name({"min_rps": 30.0}, run)["min_rps"]
    assert (low["value"], low["unit"], low["where"], low["passed"]) == (
        38.0,
        "req/s",
        "batch 2",
        True,
    )
    assert by_name({"min_rps": 40.0}, run)["min_rps"]["passed"] is False


def test_memory_limits_are_bytes_checked_in_mib_against_rss(run: RunResult) -> None:
    checks = by_name({"peak_rss": 256 * MIB, "growth": 64 * MIB}, run)
    assert checks["peak_rss"] == {
        "name": "peak_rss",
        "limit": 256.0,
        "value": 300.0,
        "unit": "MiB",
        "where": "peak RSS",
        "passed": False,
    }
    assert checks["growth"] == {
        "name": "growth",
        "limit": 64.0,
        "value": 60.0,
        "unit": "MiB",
        "where": "RSS after idle minus baseline",
        "passed": True,
    }


def test_memory_limits_use_pss_sums_when_recorded(run: RunResult) -> None:
    pss = replace(
        run.summary,
        baseline_pss_bytes=150 * MIB,
        peak_pss_bytes=500 * MIB,
        after_idle_pss_bytes=230 * MIB,
    )
    checks = by_name({"peak_rss": 400 * MIB, "growth": 64 * MIB}, replace(run, summary=pss))
    assert (checks["peak_rss"]["value"], checks["peak_rss"]["passed"]) == (500.0, False)
    assert checks["peak_rss"]["where"] == "peak PSS summed over the server's processes"
    assert (checks["growth"]["value"], checks["growth"]["passed"]) == (80.0, False)
    assert (
        checks["growth"]["where"]
        == "PSS summed over the server's processes after idle minus baseline"
    )


def test_golden_run_memory_is_its_pss(golden: RunResult) -> None:
    s = golden.summary
    assert s.peak_pss_bytes is not None and s.baseline_pss_bytes is not None
    assert s.after_idle_pss_bytes is not None
    checks = by_name({"peak_rss": float(s.peak_pss_bytes), "growth": 1.0}, golden)
    assert checks["peak_rss"]["value"] == round(s.peak_pss_bytes / MIB, 6)
    assert checks["peak_rss"]["passed"] is True
    growth = (s.after_idle_pss_bytes - s.baseline_pss_bytes) / MIB
    assert checks["growth"]["value"] == round(growth, 6)
    assert checks["growth"]["passed"] is False


def test_checks_keep_the_order_of_the_limits(run: RunResult) -> None:
    limits = {"min_rps": 1.0, "p95_ms": 1.0, "growth": 1.0}
    assert [c.name for c in check_thresholds(limits, run)] == list(limits)
    assert check_thresholds({}, run) == []


def test_failed_lines_name_value_limit_and_where(run: RunResult) -> None:
    limits = {
        "p95_ms": 800.0,
        "p99_ms": 1000.0,
        "error_rate": 0.001,
        "min_rps": 40.0,
        "peak_rss": 256 * MIB,
        "growth": 50 * MIB,
    }
    assert failed(check_thresholds(limits, run)) == [
        "p95_ms 812.0 ms > 800.0 ms (batch 2)",
        "error_rate 0.005 > 0.001 (all batches)",
        "min_rps 38.0 req/s < 40.0 req/s (batch 2)",
        "peak_rss 300.0 MiB > 256.0 MiB (peak RSS)",
        "growth 60.0 MiB > 50.0 MiB (RSS after idle minus baseline)",
    ]


def test_nothing_failed_means_no_lines(run: RunResult) -> None:
    assert failed(check_thresholds({"p95_ms": 1000.0, "min_rps": 10.0}, run)) == []


def test_a_limit_with_no_batch_has_nothing_to_check(run: RunResult) -> None:
    empty = replace(run, load=replace(run.load, stats=[]))
    checks = check_thresholds({"p95_ms": 800.0, "error_rate": 0.01, "min_rps": 5.0}, empty)
    assert to_plain(checks[0]) == {"name": "p95_ms", "limit": 800.0, "value": None, "passed": None}
    assert [c.passed for c in checks] == [None, None, None]
    assert failed(checks) == [
        "p95_ms: nothing to check it against (no batch completed)",
        "error_rate: nothing to check it against (no batch completed)",
        "min_rps: nothing to check it against (no batch completed)",
    ]


def test_memory_is_checked_even_without_a_batch(run: RunResult) -> None:
    empty = replace(run, load=replace(run.load, stats=[]))
    assert by_name({"peak_rss": 512 * MIB}, empty)["peak_rss"]["passed"] is True


# --- --threshold NAME=VALUE -----------------------------------------------------------------


def test_parse_thresholds_then_build_the_spec() -> None:
    parsed = parse_thresholds(("p95_ms=800", " peak_rss =500MiB", "min_rps=12.5"), flag=FLAG)
    assert parsed == {"p95_ms": 800.0, "peak_rss": 500 * MIB, "min_rps": 12.5}
    spec = config.build_spec(
        config.load_benchmark(None), config.validate_overrides("option", parsed)
    )
    assert spec.thresholds == {"p95_ms": 800.0, "peak_rss": 500 * MIB, "min_rps": 12.5}
    assert parse_thresholds((), flag=FLAG) == {}


@pytest.mark.parametrize("item", ["p95=800", "p95_ms", "=800", "latency=1"])
def test_parse_thresholds_bad_name(item: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_thresholds((item,), flag=FLAG)
    assert str(info.value) == (
        f"--threshold {item!r}: expected NAME=VALUE, NAME one of "
        "p95_ms, p99_ms, error_rate, peak_rss, growth, min_rps"
    )


def test_parse_thresholds_not_a_number() -> None:
    with pytest.raises(ConfigError) as info:
        parse_thresholds(("p95_ms=fast",), flag=FLAG)
    assert str(info.value) == "--threshold 'p95_ms=fast': 'fast' is not a number"
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("p95_ms=-1", "--threshold p95_ms has value -1.0; expected a number >= 0"),
        (
            "peak_rss=lots",
            "--threshold peak_rss has value 'lots'; expected a size such as 2GiB, 800MiB or "
            "1500000000",
        ),
    ],
)
def test_parse_thresholds_checks_each_value_as_its_setting(item: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_thresholds((item,), flag=FLAG)
    assert str(info.value) == message
