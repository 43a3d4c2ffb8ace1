"""Grouping runs: a group is the allocator plus `k=v` for each experiment parameter.

`glibc handler=async` names the runs of glibc with the experiment parameter handler=async;
compare, plot and the CLI all group and choose the baseline group with these functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sandbox.errors import ConfigError, SandboxError
from sandbox.results.model import RunResult


def label(allocator: str, parameters: Mapping[str, Any]) -> str:
    """`allocator k=v ...`, parameters sorted by key: the name of a group of runs."""
    parts = [allocator, *(f"{k}={_fmt_param(v)}" for k, v in sorted(parameters.items()))]
    return " ".join(parts)


def group_label(result: RunResult) -> str:
    """The group a run belongs to: its allocator and experiment parameters."""
    return label(result.allocator.name, result.parameters)


def _fmt_param(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


def group_results(results: Sequence[RunResult]) -> dict[str, list[RunResult]]:
    """Results by `group_label`, in the order each label first appears."""
    groups: dict[str, list[RunResult]] = {}
    for r in results:
        groups.setdefault(group_label(r), []).append(r)
    return groups


def choose_baseline(labels: Sequence[str], baseline: str | None = None) -> str:
    """The baseline label: `baseline` if given (exact label, or an allocator name that matches
    one group), else `glibc`, else the first group whose allocator is glibc, else the first."""
    if not labels:
        raise SandboxError("no groups to compare")
    if baseline is not None:
        if baseline in labels:
            return baseline
        matches = [lab for lab in labels if lab.split(" ")[0] == baseline]
        if len(matches) == 1:
            return matches[0]
        choices = ", ".join(repr(lab) for lab in labels)
        if matches:
            raise ConfigError(
                f"baseline {baseline!r} matches several groups ({', '.join(matches)}); "
                f"pass the full label, one of: {choices}"
            )
        raise ConfigError(f"baseline {baseline!r} is not one of the groups; use one of: {choices}")
    if "glibc" in labels:
        return "glibc"
    return next((lab for lab in labels if lab.split(" ")[0] == "glibc"), labels[0])


def workload(results: Sequence[RunResult]) -> str:
    """`tags large; 16 users; sleep 5 ms` (values joined with `/` when runs differ)."""

    def joined(values: Sequence[Any]) -> str:
        return "/".join(str(v) for v in dict.fromkeys(values))

    tags = joined([",".join(r.load.spec.tags) or "all" for r in results])
    users = joined([r.load.spec.users for r in results])
    sleep = joined([r.server.sleep_ms for r in results])
    return f"tags {tags}; {users} users; sleep {sleep} ms"


def references(by_label: Mapping[str, Sequence[RunResult]], baseline: str) -> dict[str, str]:
    """Each group but the baseline -> the group it is compared with: the baseline allocator's
    group with the same parameters when there is one (a sweep shows the allocator effect at
    each setting), else the baseline group."""
    base_allocator = by_label[baseline][0].allocator.name
    out: dict[str, str] = {}
    for lab, runs in by_label.items():
        if lab == baseline:
            continue
        twin = label(base_allocator, runs[0].parameters)
        out[lab] = twin if twin in by_label and twin != lab else baseline
    return out
