"""Small readers of the result's host, sampler and threshold sections, shared by the report, the
commands to reproduce a run and the DataFrames (one place decides what an absent figure reads as).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.results.model import RunResult
from sandbox.results.shapes import to_plain


def host_facts(result: RunResult) -> Mapping[str, Any]:
    """The host section as plain values: python, glibc, kernel, cpu_count, packages, ..."""
    facts: Mapping[str, Any] = to_plain(result.host)
    return facts


def package_versions(result: RunResult) -> Mapping[str, Any]:
    """Python package versions the run recorded (starlette, uvicorn, locust, ...)."""
    return dict(result.host.packages)


def sandbox_version(result: RunResult) -> str | None:
    """The sandbox version that made the run (format 1 files call it `sandbox`)."""
    return result.host.sandbox_version


def git_commit(result: RunResult) -> tuple[str | None, bool]:
    """The commit the run was made from, and whether the checkout had uncommitted changes."""
    return result.host.git_commit or None, bool(result.host.git_dirty)


def sampler_interval_s(result: RunResult) -> float | None:
    """The sampler's interval in seconds."""
    return float(result.sampler.interval_s)


def threshold_outcomes(result: RunResult) -> list[tuple[str, bool | None]]:
    """(limit name, passed) for each threshold checked; passed is None without a figure."""
    return [(t.name, t.passed) for t in result.thresholds]
