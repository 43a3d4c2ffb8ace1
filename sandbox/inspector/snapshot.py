"""What one `sandbox inspect` look at a process found: the model and its JSON form.

JSON (`Snapshot.to_dict`, format "sandbox-inspect", version 1); sizes in bytes, times in ms;
a key whose value could not be read is null, never a guess:

    format, version      "sandbox-inspect", 1
    pid, command         the process and its command line
    taken_at             UTC time, ISO 8601
    allocator            the family that serves malloc: glibc, jemalloc, tcmalloc, mimalloc or
                         the library's file name
    malloc               {family, library, mapped_allocators, ld_preload}: the evidence from
                         /proc (maps, environ); owner: the file where the target's dynamic
                         linker finds `malloc` (dlsym(RTLD_DEFAULT), called through gdb)
    rss                  {rss_bytes, anonymous_bytes, file_bytes, swap_bytes, anon_huge_bytes,
                         regions: [{name, mappings, size_bytes, rss_bytes}]} from smaps
    counters             the allocator's own counters, read inside the target, or null:
                         {allocator, in_use_bytes, held_bytes, free_kept_bytes, raw, source,
                         note}; in_use and held as sandbox.server.introspect defines them
    python               CPython's counters, or null when the target is not CPython:
                         {version, allocated_blocks, pymalloc: {arenas, arena_bytes,
                         allocated_bytes, available_bytes, highwater_arenas} | null, note}
    trim                 after --trim: {called, result, rss_before_bytes, rss_after_bytes,
                         returned_bytes, held_before_bytes, held_after_bytes}, else null
    stopped_ms           how long the target was stopped (gdb's attach to its detach)
    attach_ms            of which the attach itself
    phases_ms            where the stop went, in order: attach, thread (choosing one outside
                         the allocator), owner (dlsym), counters, python, trim, counters_after,
                         unmap, detach
    problem              why counters are missing (not attached, allocator not recognised), or null
    route                how the counters were read: "proc" (--no-attach: /proc only), "agent"
                         (the sandbox's agent inside the process: never stopped), "gdb"
    debugger             the gdb used {path, version, banner, build}, or null
    preflight            the host's safety check before gdb touched the process (null unless
                         route is "gdb"): {passed, failure, summary, key, checked_at, took_s,
                         cached, debugger, register_state, interpreter, note, canaries: [{kind,
                         looks, died, look_error, iterations, wrong, errors, numpy}]}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.inspector.detection import Detection
from sandbox.inspector.pymalloc import Pymalloc
from sandbox.inspector.smaps import MemoryMap

FORMAT = "sandbox-inspect"
VERSION = 1


@dataclass(frozen=True)
class Counters:
    """The allocator's counters read inside the target, normalised as the in-process ones."""

    allocator: str
    in_use_bytes: int | None
    """Allocated by the application and not freed; None when the allocator does not count it."""
    held_bytes: int | None
    """Taken from the OS and not given back."""
    raw: Mapping[str, int] = field(default_factory=dict)
    """The native counters, by their native names."""
    source: str | None = None
    """The call that produced them, e.g. `mallinfo2()`."""
    note: str | None = None

    @property
    def free_kept_bytes(self) -> int | None:
        """Free memory the allocator keeps: held - in use."""
        if self.in_use_bytes is None or self.held_bytes is None:
            return None
        return self.held_bytes - self.in_use_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "allocator": self.allocator,
            "in_use_bytes": self.in_use_bytes,
            "held_bytes": self.held_bytes,
            "free_kept_bytes": self.free_kept_bytes,
            "raw": dict(self.raw),
            "source": self.source,
            "note": self.note,
        }


@dataclass(frozen=True)
class PythonCounters:
    """CPython's own view, read inside the target."""

    version: str
    allocated_blocks: int | None
    """sys.getallocatedblocks(): live pymalloc blocks (objects and other small allocations)."""
    pymalloc: Pymalloc | None
    note: str | None = None
    """What could not be read, and why."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "allocated_blocks": self.allocated_blocks,
            "pymalloc": self.pymalloc.to_dict() if self.pymalloc else None,
            "note": self.note,
        }


@dataclass(frozen=True)
class Trim:
    """What asking the allocator for memory back called, and what came back."""

    called: str
    result: int | None
    """The function's return value (malloc_trim: 1 if memory was released); None for void."""
    rss_before_bytes: int
    rss_after_bytes: int
    """RSS just before and just after the call (the target stays stopped in between)."""
    held_before_bytes: int | None
    held_after_bytes: int | None

    @property
    def returned_bytes(self) -> int:
        return self.rss_before_bytes - self.rss_after_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "called": self.called,
            "result": self.result,
            "rss_before_bytes": self.rss_before_bytes,
            "rss_after_bytes": self.rss_after_bytes,
            "returned_bytes": self.returned_bytes,
            "held_before_bytes": self.held_before_bytes,
            "held_after_bytes": self.held_after_bytes,
        }


@dataclass(frozen=True)
class Snapshot:
    """One look at a process: /proc's view, and (when attached) the allocator's and CPython's."""

    pid: int
    command: str
    taken_at: str
    allocator: str
    """The family serving malloc (gdb's resolution when attached, else the maps')."""
    detection: Detection
    memory: MemoryMap
    owner: str | None = None
    """The file where the target's dynamic linker finds `malloc`; None when not attached."""
    counters: Counters | None = None
    python: PythonCounters | None = None
    trim: Trim | None = None
    stopped_ms: float | None = None
    attach_ms: float | None = None
    phases_ms: Mapping[str, float] = field(default_factory=dict)
    problem: str | None = None
    """Why the counters are missing; the CLI exits 1 after printing when set."""
    route: str = "proc"
    """How the counters were read: proc (none read), agent, or gdb."""
    debugger: Mapping[str, Any] | None = None
    preflight: Mapping[str, Any] | None = None
    """The preflight's verdict (preflight.Verdict.to_dict) when gdb was used."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "pid": self.pid,
            "command": self.command,
            "taken_at": self.taken_at,
            "allocator": self.allocator,
            "malloc": {**self.detection.to_dict(), "owner": self.owner},
            "rss": self.memory.to_dict(),
            "counters": self.counters.to_dict() if self.counters else None,
            "python": self.python.to_dict() if self.python else None,
            "trim": self.trim.to_dict() if self.trim else None,
            "stopped_ms": self.stopped_ms,
            "attach_ms": self.attach_ms,
            "phases_ms": dict(self.phases_ms),
            "problem": self.problem,
            "route": self.route,
            "debugger": dict(self.debugger) if self.debugger else None,
            "preflight": dict(self.preflight) if self.preflight else None,
        }
