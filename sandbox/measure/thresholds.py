"""Pass/fail limits on a run, for CI: latency, errors, throughput and memory.

Each limit is checked against the run's own figures; a run passes them all or the command exits
non-zero naming every limit it broke.

- p95_ms, p99_ms: the worst batch's percentile (Locust's), milliseconds;
- error_rate: failures / requests over all batches (0.01 = 1 %);
- min_rps: the slowest batch's request rate;
- peak_rss: the highest sampled memory (the PSS sum when the server has several processes);
- growth: memory after idle minus the baseline (PSS sums likewise).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sandbox.config import settings as config
from sandbox.errors import ConfigError
from sandbox.results.model import RunResult
from sandbox.results.thresholds import ThresholdCheck
from sandbox.units import MIB

SIZES = ("peak_rss", "growth")
"""The limits on memory: sizes such as 500MiB, held in bytes."""


def _worst(result: RunResult, attr: str, highest: bool = True) -> tuple[float, str] | None:
    stats = result.load.stats
    if not stats:
        return None
    pick = max if highest else min
    batch = pick(stats, key=lambda b: float(getattr(b, attr)))
    return float(getattr(batch, attr)), f"batch {batch.index}"


def _memory(result: RunResult) -> tuple[int, int, int, str]:
    """(baseline, peak, after idle, what was measured)."""
    s = result.summary
    if s.peak_pss_bytes is not None:
        pss = result.samples.get("pss_bytes") or [0]
        return (
            s.baseline_pss_bytes if s.baseline_pss_bytes is not None else int(pss[0]),
            s.peak_pss_bytes,
            s.after_idle_pss_bytes if s.after_idle_pss_bytes is not None else int(pss[-1]),
            "PSS summed over the server's processes",
        )
    return s.baseline_rss_bytes, s.peak_rss_bytes, s.after_idle_rss_bytes, "RSS"


def measured(name: str, result: RunResult) -> tuple[float, str, str] | None:
    """(value, unit, where) of one threshold's figure, or None when the run has none."""
    if name in ("p95_ms", "p99_ms"):
        worst = _worst(result, name)
        return None if worst is None else (worst[0], "ms", worst[1])
    if name == "min_rps":
        worst = _worst(result, "rps", highest=False)
        return None if worst is None else (worst[0], "req/s", worst[1])
    if name == "error_rate":
        requests = sum(b.requests for b in result.load.stats)
        failures = sum(b.failures for b in result.load.stats)
        return None if not requests else (failures / requests, "", "all batches")
    base, peak, after_idle, what = _memory(result)
    if name == "peak_rss":
        return peak / MIB, "MiB", f"peak {what}"
    if name == "growth":
        return (after_idle - base) / MIB, "MiB", f"{what} after idle minus baseline"
    raise KeyError(name)


def parse_thresholds(items: Iterable[str], *, flag: str) -> dict[str, Any]:
    """`NAME=VALUE` values of the command-line `flag` -> threshold settings by name, checked as
    benchmark.yml's `thresholds:` are (sizes in bytes); errors name the flag."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in config.THRESHOLDS:
            raise ConfigError(
                f"{flag} {item!r}: expected NAME=VALUE, NAME one of {', '.join(config.THRESHOLDS)}"
            )
        try:
            raw: Any = value if name in SIZES else float(value)
            out.update(config.validate_overrides("threshold", {name: raw}))
        except ValueError:
            raise ConfigError(f"{flag} {item!r}: {value!r} is not a number") from None
        except ConfigError as exc:
            raise ConfigError(f"{flag} {exc}") from None
    return out


def _limit(name: str, limit: float) -> float:
    return limit / MIB if name in SIZES else limit


def check_thresholds(limits: Mapping[str, float], result: RunResult) -> list[ThresholdCheck]:
    """One check per limit (passed None: the run has no figure for it)."""
    out = []
    for name, raw_limit in limits.items():
        limit = _limit(name, raw_limit)
        got = measured(name, result)
        if got is None:
            out.append(ThresholdCheck(name, limit, None))
            continue
        value, unit, where = got
        passed = value >= limit if name == "min_rps" else value <= limit
        out.append(ThresholdCheck(name, round(limit, 6), round(value, 6), unit, where, passed))
    return out


def failed(checks: Sequence[ThresholdCheck]) -> list[str]:
    """One line per broken limit, e.g. `p95_ms 812 ms > 800 ms (batch 2)`; a limit with no
    figure to check (no batch ran) counts as broken."""
    lines = []
    for c in checks:
        if c.passed is None or c.value is None:
            lines.append(f"{c.name}: nothing to check it against (no batch completed)")
        elif not c.passed:
            op = "<" if c.name == "min_rps" else ">"
            unit = f" {c.unit}" if c.unit else ""
            lines.append(f"{c.name} {_fmt(c.value)}{unit} {op} {_fmt(c.limit)}{unit} ({c.where})")
    return lines


def _fmt(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1 else f"{v:.1f}"
