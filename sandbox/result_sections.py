"""The smaller sections of a result file, typed: host, harness, sampler, trim, objects, profile
and threshold checks. Each has `to_dict` (what lands on disk, key for key as format 3 writes it) and
`from_dict` (which ignores keys it does not know, so newer files still read).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, TypeVar

from sandbox.errors import ResultFormatError
from sandbox.json_shapes import Mismatch, check_fields

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def from_fields(cls: type[T], data: Mapping[str, Any]) -> T:
    """A flat dataclass from the keys of `data` that name its fields (newer writers may add
    others); ResultFormatError when `data` is not a mapping, lacks a field or has a value of
    the wrong type."""
    if not isinstance(data, Mapping):
        raise ResultFormatError(f"{cls.__name__}: expected a mapping, got {data!r:.60}")
    try:
        check_fields(cls, data)
    except Mismatch as exc:
        raise ResultFormatError(f"{cls.__name__}: {exc}") from None
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:
        raise ResultFormatError(f"{cls.__name__}: {exc}") from None


def _plain(obj: DataclassInstance, *, skip_none: bool = False) -> dict[str, Any]:
    """The fields of a flat dataclass by name, in their order (None ones left out if asked)."""
    out = {f.name: getattr(obj, f.name) for f in fields(obj)}
    return {k: v for k, v in out.items() if v is not None} if skip_none else out


S = TypeVar("S", bound="_Section")


class _Section:
    """A flat section: its fields are its keys on disk."""

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)  # type: ignore[arg-type]  # every subclass is a dataclass

    @classmethod
    def from_dict(cls: type[S], data: Mapping[str, Any]) -> S:
        return from_fields(cls, data)  # type: ignore[type-var]


@dataclass(frozen=True)
class HostInfo(_Section):
    """The machine and software the run happened on (None: not known, or an older file)."""

    hostname: str | None = None
    python: str | None = None
    """Python version of the harness (and of the stair-stepper it started)."""
    python_implementation: str | None = None
    glibc: str | None = None
    """glibc version, e.g. 2.36."""
    kernel: str | None = None
    machine: str | None = None
    cpu_count: int | None = None
    memory_total_bytes: int | None = None
    sandbox_version: str | None = None
    packages: dict[str, str | None] = field(default_factory=dict)
    """Versions of the packages that shape a run (starlette, uvicorn, locust, ...)."""
    git_commit: str | None = None
    git_dirty: bool | None = None
    """True when tracked files differed from the commit."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HostInfo:
        if isinstance(data, Mapping) and "sandbox_version" not in data and "sandbox" in data:
            data = {**data, "sandbox_version": data["sandbox"]}  # before format 1 settled
        return from_fields(cls, data)


@dataclass(frozen=True)
class HarnessInfo(_Section):
    """The harness process that ran the run (format 4): a checkpoint whose harness no longer runs
    is marked `harness-died`. The start time tells a reused pid from the harness."""

    pid: int
    start_ticks: int | None = None
    """When it started, in clock ticks since boot (/proc/PID/stat field 22)."""
    boot_id: str | None = None
    """The boot it ran in (/proc/sys/kernel/random/boot_id)."""
    hostname: str | None = None


@dataclass(frozen=True)
class SamplerInfo(_Section):
    """How memory was sampled."""

    interval_s: float
    """Seconds between RSS samples."""
    probe_interval_s: float | None = None
    """Seconds between probes (USS/PSS and the server's own counters)."""
    source: str = ""
    """What the figures come from."""
    decimation: int = 1
    """How many raw samples each stored one stands for (long runs are thinned)."""
    peak_rss_bytes: int | None = None
    """The highest RSS of every raw sample, stored or not."""
    harness_rss_bytes: int | None = None
    """The measuring process's own RSS at the end."""
    harness_peak_rss_bytes: int | None = None
    """The measuring process's peak RSS (ru_maxrss)."""


@dataclass(frozen=True)
class Released:
    """What a trim gave back: before minus after."""

    held_bytes: int | None
    rss_bytes: int | None


@dataclass(frozen=True)
class TrimInfo:
    """The server's answer to POST /debug/trim: what it called and what that released."""

    called: str | None
    """The allocator function called, e.g. `malloc_trim(0)`; None when it has none."""
    result: int | None
    """What that function returned (None for void functions)."""
    before: dict[str, Any]
    """The server's memory state before: its allocator's snapshot (allocator, library,
    in_use_bytes, held_bytes, raw counters, note) and rss_bytes, as GET /debug/memory has it."""
    after: dict[str, Any]
    """The same, after."""
    released: Released
    took_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {**_plain(self), "released": _plain(self.released)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrimInfo:
        if not isinstance(data, Mapping) or "released" not in data:
            raise ResultFormatError("TrimInfo: expected a mapping with 'released'")
        return from_fields(cls, {**data, "released": from_fields(Released, data["released"])})


@dataclass(frozen=True)
class ObjectType:
    """One Python type in pympler's summary."""

    type: str
    """The type, as pympler's summary names it."""
    count: int
    """Live objects of the type."""
    total_bytes: int
    """Their size together, as pympler's summary counts it."""


@dataclass(frozen=True)
class TopObjects:
    """Pympler's top object types by size at one moment (GET /debug/objects)."""

    limit: int
    """How many types were asked for."""
    types: list[ObjectType]
    """Largest first."""
    took_ms: float
    """How long the walk over every object took."""
    t_s: float
    """When, seconds since the run's t=0."""

    def to_dict(self) -> dict[str, Any]:
        return {**_plain(self), "types": [_plain(t) for t in self.types]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TopObjects:
        raw = data.get("types") if isinstance(data, Mapping) else None
        if not isinstance(raw, list):
            raise ResultFormatError("TopObjects: 'types' must be a list")
        return from_fields(cls, {**data, "types": [from_fields(ObjectType, t) for t in raw]})


@dataclass(frozen=True)
class ProfileInfo(_Section):
    """A memray capture of the server and what was rendered from it."""

    tool: str = "memray"
    native: bool = True
    """Native (C) stacks recorded too."""
    mode: str = "aggregate"
    overhead: str = ""
    """What profiling does to the figures."""
    capture: str = ""
    """The capture file (memray's aggregated format)."""
    error: str | None = None
    """Why there is no capture."""
    capture_bytes: int | None = None
    flamegraph: str | None = None
    """The rendered flamegraph (HTML)."""
    flamegraph_error: str | None = None
    stats: str | None = None
    """memray's summary of the allocating locations (text)."""
    stats_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _plain(self, skip_none=True)


@dataclass(frozen=True)
class ThresholdCheck(_Section):
    """One limit checked after the run."""

    name: str
    """p95_ms, p99_ms, error_rate, min_rps, peak_rss or growth."""
    limit: float
    """In `unit` (MiB for the memory limits)."""
    value: float | None
    """The run's figure; None when it has none (no batch completed)."""
    unit: str | None = None
    where: str | None = None
    """Which figure: the batch, or what memory was measured."""
    passed: bool | None = None
    """None: nothing to check against (counts as broken)."""

    def to_dict(self) -> dict[str, Any]:
        plain = _plain(self)
        if self.value is None:  # no figure: no unit, nor where
            del plain["unit"], plain["where"]
        return plain
