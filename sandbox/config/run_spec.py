"""What one run needs, fully resolved and validated: `RunSpec` and its sections.

`config.build_spec` makes it (defaults, benchmark.yml, an experiment file, flags); the runner
reads it; the parts a result records (the load and its schedule) are stored as they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from sandbox.allocators.registry import Allocator
from sandbox.config.server_settings import ServerSettings
from sandbox.errors import ConfigError
from sandbox.load.spec import LoadSpec, Schedule


@dataclass(frozen=True)
class Target:
    """What to serve: the stair-stepper (default), a user's ASGI app, or any server command."""

    workers: int = 1
    """Server processes (uvicorn --workers) for the stair-stepper or an app."""
    app: str | None = None
    """`module:attr` of an ASGI app, served by uvicorn from `cwd`."""
    cmd: str | None = None
    """Any server command; `{host}` and `{port}` in it are filled in."""
    ready_url: str | None = None
    """Polled until it answers; `{host}` and `{port}` are filled in. Default: /health for the
    stair-stepper, / for an app; required with cmd."""
    cwd: Path | None = None
    """Working directory of an app or a command (default: the current one)."""

    @property
    def ours(self) -> bool:
        return self.app is None and self.cmd is None

    def describe(self) -> str:
        if self.cmd:
            return f"command `{self.cmd}`"
        return f"app {self.app}" if self.app else "the stair-stepper"


@dataclass(frozen=True)
class ServerSpec:
    """How the server process runs, besides what it serves (`Target`)."""

    settings: ServerSettings
    """The stair-stepper's behaviour (handler, latency, threads), passed in its environment."""
    pymalloc: bool
    """False: PYTHONMALLOC=malloc, so every allocation goes to the allocator under test."""
    host: str
    """Address the server binds and the load goes to: loopback, unless `expose`."""
    port: int | None
    """None: a free port."""
    host_cores: int | None = None
    """Run with the allocator defaults of a host of this many cores
    (sandbox/allocators/host_cores.py)."""
    expose: bool = False
    """`host` may be beyond loopback, for Locust workers on other machines (--server-host with
    --expose); the server then runs with its exposed limits."""


@dataclass(frozen=True)
class SamplerSpec:
    """How often memory is read."""

    interval_s: float
    """RSS sampling interval."""
    probe_interval_s: float
    """Interval of the slower probes (USS/PSS and the server's own counters)."""


@dataclass(frozen=True)
class Limits:
    """When the run gives up on the server."""

    ready_timeout_s: float
    """How long the server may take to answer /health after it starts."""
    hang_timeout_s: float
    """How long the server may answer nothing during the run before it counts as hung."""
    max_rss_bytes: int | None
    """Stop the server past this RSS (None: no cap; 0 is refused, not read as "no cap")."""

    def __post_init__(self) -> None:
        if self.max_rss_bytes is not None and self.max_rss_bytes < 1:
            raise ConfigError(
                f"max_rss has value {self.max_rss_bytes!r}; expected a size of at least 1 byte "
                "(leave it out for no cap)"
            )


@dataclass(frozen=True)
class Inspection:
    """Looks inside the server beyond sampling its memory; each is opt-in."""

    trim_s: float
    """After idle: ask the allocator to return free memory, then sample this long (0: skip)."""
    objects: bool
    """Record pympler's top object types at end of load and after idle."""
    profile: str | None
    """`memray` to run the server under memray."""
    collect_garbage: bool = False
    """In the trim phase, before the trim: a full gc.collect() in every process with an agent,
    recording what it found and freed (garbage held in reference cycles)."""


@dataclass(frozen=True)
class Output:
    """Where the result goes."""

    results_dir: Path
    """A single run writes under results_dir/runs; an experiment's runs straight into it."""
    compress: bool
    """Write .json.gz."""


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs, fully resolved and validated."""

    allocator: str
    """Registry name of the allocator under test."""
    target: Target
    """What to serve: the stair-stepper, a user's app or command; server processes."""
    server: ServerSpec
    load: LoadSpec
    """The load of every batch; handed to the driver as it is, recorded in the result."""
    schedule: Schedule
    """Baseline, batches with pauses, idle."""
    sampler: SamplerSpec
    limits: Limits
    inspect: Inspection
    output: Output
    thresholds: Mapping[str, float] = field(default_factory=dict)
    """Limits checked after the run (config.THRESHOLDS), by name; sizes in bytes."""
    custom_allocators: Mapping[str, Allocator] = field(default_factory=dict)
    """Allocators defined in benchmark.yml or the experiment file, by name."""
    experiment: str | None = None
    repeat: int = 0
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """Experiment parameters that vary between runs."""

    def with_(self, **changes: Any) -> RunSpec:
        """A copy with fields replaced. A key is a field of RunSpec (`repeat`), a dotted path
        (`output.results_dir`), or a field name that occurs in one section only (`profile`)."""
        spec = self
        for key, value in changes.items():
            spec = _replace_path(spec, _path(spec, key), value)
        return spec


def _fields_below(obj: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for f in fields(obj):
        path = (*prefix, f.name)
        yield path
        value = getattr(obj, f.name)
        if is_dataclass(value) and not isinstance(value, type):
            yield from _fields_below(value, path)


def _path(spec: RunSpec, key: str) -> tuple[str, ...]:
    if "." in key or key in {f.name for f in fields(spec)}:
        return tuple(key.split("."))
    matches = [p for p in _fields_below(spec) if p[-1] == key]
    if len(matches) != 1:
        found = ", ".join(".".join(p) for p in matches)
        why = f"is ambiguous ({found}); give its path" if matches else "names no field of RunSpec"
        raise TypeError(f"RunSpec.with_: {key} {why}")
    return matches[0]


def _replace_path(obj: Any, path: tuple[str, ...], value: Any) -> Any:
    head, *rest = path
    if not is_dataclass(obj) or isinstance(obj, type) or head not in {f.name for f in fields(obj)}:
        raise TypeError(f"RunSpec.with_: {type(obj).__name__} has no field {head}")
    if rest:
        value = _replace_path(getattr(obj, head), tuple(rest), value)
    return replace(obj, **{head: value})
