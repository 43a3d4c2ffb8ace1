"""What was in the server's heap: pympler's top object types at chosen moments, and a memray
capture of where memory was allocated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.results.shapes import omitted_when_none


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


@dataclass(frozen=True)
class ProfileInfo:
    """A memray capture of the server and what was rendered from it."""

    tool: str = "memray"
    native: bool = True
    """Native (C) stacks recorded too."""
    mode: str = "aggregate"
    overhead: str = ""
    """What profiling does to the figures."""
    capture: str = ""
    """The capture file (memray's aggregated format)."""
    error: str | None = field(default=None, metadata=omitted_when_none())
    """Why there is no capture."""
    capture_bytes: int | None = field(default=None, metadata=omitted_when_none())
    flamegraph: str | None = field(default=None, metadata=omitted_when_none())
    """The rendered flamegraph (HTML)."""
    flamegraph_error: str | None = field(default=None, metadata=omitted_when_none())
    stats: str | None = field(default=None, metadata=omitted_when_none())
    """memray's summary of the allocating locations (text)."""
    stats_error: str | None = field(default=None, metadata=omitted_when_none())
