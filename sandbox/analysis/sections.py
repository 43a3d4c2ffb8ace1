"""Accessors for the result sections that are plain dicts today (host, sampler, thresholds).

The report and the DataFrames read those sections only through these functions, so when the
sections become dataclasses only this module changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.results import RunResult


def host_facts(result: RunResult) -> Mapping[str, Any]:
    """The host section: python, glibc, kernel, cpu_count, packages, git_commit, ..."""
    return result.host


def package_versions(result: RunResult) -> Mapping[str, Any]:
    """Python package versions the run recorded (starlette, uvicorn, locust, ...)."""
    packages = host_facts(result).get("packages")
    return packages if isinstance(packages, Mapping) else {}


def sandbox_version(result: RunResult) -> str | None:
    """The sandbox version that made the run (format 1 files call it `sandbox`)."""
    facts = host_facts(result)
    value = facts.get("sandbox_version", facts.get("sandbox"))
    return None if value is None else str(value)


def git_commit(result: RunResult) -> tuple[str | None, bool]:
    """The commit the run was made from, and whether the checkout had uncommitted changes."""
    facts = host_facts(result)
    commit = facts.get("git_commit")
    return (str(commit) if commit else None), bool(facts.get("git_dirty"))


def sampler_interval_s(result: RunResult) -> float | None:
    """The sampler's interval in seconds."""
    value = result.sampler.get("interval_s")
    return float(value) if isinstance(value, int | float) else None


def threshold_outcomes(result: RunResult) -> list[tuple[str, bool | None]]:
    """(limit name, passed) for each threshold checked; passed is None without a figure."""
    return [(str(t.get("name")), t.get("passed")) for t in result.thresholds]
