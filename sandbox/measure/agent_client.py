"""The harness's side of the agent's channel: find each process's socket, ask it, parse the reply.

Every server process the harness starts with `inject.agent_environ` puts a socket
`agent-PID.sock` in the run's private folder (see `sandbox.agent`). A method returns None when
the process has no agent (no socket, or a stale socket whose process is gone); an agent that
answers late, answers an error or answers garbage raises AgentError.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.agent import protocol
from sandbox.errors import SandboxError

SNAPSHOT_TIMEOUT_S = 2.0
TRIM_TIMEOUT_S = 30.0
"""malloc_trim walks every arena: seconds on a big, fragmented heap."""
COLLECT_TIMEOUT_S = 60.0
"""A full collection walks every tracked object: about a second per 10 million, more when
finalizers run; twice the trim's time."""
MAX_REPLY_BYTES = 16 * 1024 * 1024


class AgentError(SandboxError):
    """An agent is there but did not answer as it should (late, an error, a malformed reply)."""


@dataclass(frozen=True)
class MemoryState:
    """The allocator's counters and RSS at one moment (what `trim` reports before and after)."""

    allocator: str
    """glibc, jemalloc, tcmalloc, mimalloc, or the library's file name when unknown."""
    library: str | None
    """Path of the library that provides malloc; None for glibc's own."""
    in_use_bytes: int | None
    """Allocated by the application and not freed; None when the allocator does not count it."""
    held_bytes: int | None
    """Taken from the OS and not returned; None when unavailable."""
    raw: Mapping[str, int]
    """The allocator's native counters, by their native names."""
    note: str | None
    """What limits these numbers, or why they are missing."""
    rss_bytes: int
    """The process's resident set size (/proc/self/statm)."""


@dataclass(frozen=True)
class InterpreterCounters:
    """The interpreter's own counters."""

    allocated_blocks: int
    """sys.getallocatedblocks(): objects pymalloc and the allocator hold for Python."""
    gc_counts: tuple[int, ...]
    """gc.get_count(): allocations since the last collection, per generation."""
    gc_objects: int | None
    """len(gc.get_objects()), only when asked for (slow on big heaps)."""
    tracemalloc_bytes: int | None
    """Traced memory when tracemalloc is tracing, else None."""
    tracemalloc_peak_bytes: int | None


@dataclass(frozen=True)
class PymallocCounters:
    """pymalloc's arenas and blocks (CPython's allocator for objects up to 512 bytes), from the
    report `sys._debugmallocstats()` prints. arena_bytes = used_bytes + free_bytes +
    unused_pool_bytes + overhead_bytes. The agent renews it at most every `every_s`."""

    arenas: int
    """Arenas mapped now."""
    arena_bytes: int
    """What they span: mapped by pymalloc itself, outside every allocator counter."""
    used_bytes: int
    """In blocks handed out to objects: live Python objects."""
    free_bytes: int
    """In free blocks of the pools in use."""
    unused_pool_bytes: int | None
    """In pools of the arenas that hold no block."""
    overhead_bytes: int | None
    """Pool headers, size-class rounding and arena alignment."""
    pools: int | None
    """Pools in use."""
    highwater_arenas: int | None
    """The most arenas ever mapped at once."""
    source: str
    """How the agent read it: `_PyObject_DebugMallocStats` (ctypes) or `sys._debugmallocstats`."""
    age_s: float
    """How old the reading was when the agent answered."""
    every_s: float
    """How often the agent renews it (at most)."""
    cpu_ms: float
    """The CPU time its last renewal took."""


@dataclass(frozen=True)
class MemorySnapshot(MemoryState):
    """An agent's answer to `memory`."""

    pid: int
    python: InterpreterCounters
    extra: Mapping[str, Any]
    """Counters registered with the agent beyond the fixed ones (pymalloc's, as sent)."""
    took_ms: float
    """How long the agent took to read them."""
    pymalloc: PymallocCounters | None = None
    """extra["pymalloc"], typed; None when there are no figures (`pymalloc_note` says why)."""
    pymalloc_note: str | None = None
    """Why `pymalloc` is None: pymalloc is off (PYTHONMALLOC=malloc), its reading failed, or
    the agent sent none."""


@dataclass(frozen=True)
class TrimResult:
    """An agent's answer to `trim`: what it called and what came back."""

    pid: int
    called: str | None
    """The release function called, e.g. `malloc_trim(0)`; None when the allocator has none."""
    result: int | None
    """What it returned (None for void functions)."""
    before: MemoryState
    after: MemoryState
    released_held_bytes: int | None
    """before.held_bytes - after.held_bytes; None when either is unknown."""
    released_rss_bytes: int
    """before.rss_bytes - after.rss_bytes."""
    took_ms: float


@dataclass(frozen=True)
class CollectResult:
    """An agent's answer to `collect`: a full collection, what it found and what it freed."""

    pid: int
    unreachable: int
    """gc.collect()'s return value: the unreachable objects it found."""
    counts_before: tuple[int, ...]
    """gc.get_count() before it: allocations since the last collection, per generation."""
    generations: tuple[Mapping[str, int], ...]
    """gc.get_stats() after it: per generation, collections, collected, uncollectable."""
    garbage: int
    """len(gc.garbage) after it."""
    before: MemoryState
    after: MemoryState
    pymalloc_used_before_bytes: int | None
    """pymalloc's bytes in objects before; None when pymalloc is off or unread."""
    pymalloc_used_after_bytes: int | None
    freed_in_use_bytes: int | None
    """before.in_use_bytes - after.in_use_bytes; None when either is unknown."""
    freed_held_bytes: int | None
    freed_rss_bytes: int
    freed_pymalloc_used_bytes: int | None
    collect_ms: float
    """The collection alone."""
    took_ms: float
    """The whole op, readings included."""


@dataclass(frozen=True)
class Hello:
    """An agent's answer to `hello`: which process it lives in."""

    protocol: int
    pid: int
    ppid: int
    python: str
    """The interpreter's version, e.g. 3.11.7."""
    implementation: str
    executable: str
    argv: tuple[str, ...]
    allocator: str
    library: str | None


class _Fields:
    """Typed reads from one decoded reply; AgentError naming the field when one is wrong."""

    def __init__(self, data: Any, what: str) -> None:
        if not isinstance(data, dict):
            raise AgentError(f"{what} is not a JSON object")
        self.data: dict[str, Any] = data
        self.what = what

    def _get(self, key: str, types: tuple[type, ...], optional: bool) -> Any:
        if key not in self.data:
            raise AgentError(f"{self.what} has no {key!r}")
        value = self.data[key]
        if value is None and optional:
            return None
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise AgentError(f"{self.what} has a bad {key!r}: {value!r}"[:300])
        return value

    def whole(self, key: str) -> int:
        value: int = self._get(key, (int,), False)
        return value

    def opt_whole(self, key: str) -> int | None:
        value: int | None = self._get(key, (int,), True)
        return value

    def number(self, key: str) -> float:
        return float(self._get(key, (int, float), False))

    def text(self, key: str) -> str:
        value: str = self._get(key, (str,), False)
        return value

    def opt_text(self, key: str) -> str | None:
        value: str | None = self._get(key, (str,), True)
        return value

    def sub(self, key: str) -> _Fields:
        return _Fields(self._get(key, (dict,), False), f"{self.what}[{key!r}]")

    def subs(self, key: str) -> list[_Fields]:
        """The objects in the list under `key`, each as _Fields."""
        values = self._get(key, (list,), False)
        return [_Fields(v, f"{self.what}[{key!r}][{i}]") for i, v in enumerate(values)]

    def wholes(self, key: str) -> list[int]:
        values = self._get(key, (list,), False)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise AgentError(f"{self.what} has a bad {key!r}: {values!r}"[:300])
        return list(values)

    def texts(self, key: str) -> list[str]:
        values = self._get(key, (list,), False)
        if not all(isinstance(v, str) for v in values):
            raise AgentError(f"{self.what} has a bad {key!r}: {values!r}"[:300])
        return list(values)

    def whole_map(self, key: str) -> dict[str, int]:
        values = self._get(key, (dict,), False)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values.values()):
            raise AgentError(f"{self.what} has a bad {key!r}: {values!r}"[:300])
        return dict(values)


def _state_fields(f: _Fields) -> dict[str, Any]:
    return {
        "allocator": f.text("allocator"),
        "library": f.opt_text("library"),
        "in_use_bytes": f.opt_whole("in_use_bytes"),
        "held_bytes": f.opt_whole("held_bytes"),
        "raw": f.whole_map("raw"),
        "note": f.opt_text("note"),
        "rss_bytes": f.whole("rss_bytes"),
    }


def parse_pymalloc(data: Any, what: str) -> tuple[PymallocCounters | None, str | None]:
    """The counters in extra["pymalloc"] (absent: `data` is None), or None and why."""
    if data is None:
        return None, "the agent sent no pymalloc figures"
    f = _Fields(data, what)
    if "error" in f.data:
        return None, f"reading pymalloc failed: {f.text('error')}"
    if "unavailable" in f.data:
        return None, f.text("unavailable")
    counters = PymallocCounters(
        arenas=f.whole("arenas"),
        arena_bytes=f.whole("arena_bytes"),
        used_bytes=f.whole("used_bytes"),
        free_bytes=f.whole("free_bytes"),
        unused_pool_bytes=f.opt_whole("unused_pool_bytes"),
        overhead_bytes=f.opt_whole("overhead_bytes"),
        pools=f.opt_whole("pools"),
        highwater_arenas=f.opt_whole("highwater_arenas"),
        source=f.text("source"),
        age_s=f.number("age_s"),
        every_s=f.number("every_s"),
        cpu_ms=f.number("cpu_ms"),
    )
    return counters, None


def parse_memory(data: Any, what: str = "the memory reply") -> MemorySnapshot:
    """The MemorySnapshot in a decoded `memory` result; AgentError if malformed."""
    f = _Fields(data, what)
    p = f.sub("python")
    python = InterpreterCounters(
        allocated_blocks=p.whole("allocated_blocks"),
        gc_counts=tuple(p.wholes("gc_counts")),
        gc_objects=p.opt_whole("gc_objects"),
        tracemalloc_bytes=p.opt_whole("tracemalloc_bytes"),
        tracemalloc_peak_bytes=p.opt_whole("tracemalloc_peak_bytes"),
    )
    state, pid, took_ms, extra = (
        _state_fields(f),
        f.whole("pid"),
        f.number("took_ms"),
        f.sub("extra"),
    )
    pymalloc, note = parse_pymalloc(extra.data.get("pymalloc"), f"{what}'s extra['pymalloc']")
    return MemorySnapshot(
        **state,
        pid=pid,
        python=python,
        extra=dict(extra.data),
        took_ms=took_ms,
        pymalloc=pymalloc,
        pymalloc_note=note,
    )


def parse_trim(data: Any, pid: int, what: str = "the trim reply") -> TrimResult:
    """The TrimResult in a decoded `trim` result; AgentError if malformed."""
    f = _Fields(data, what)
    released = f.sub("released")
    return TrimResult(
        pid=pid,
        called=f.opt_text("called"),
        result=f.opt_whole("result"),
        before=MemoryState(**_state_fields(f.sub("before"))),
        after=MemoryState(**_state_fields(f.sub("after"))),
        released_held_bytes=released.opt_whole("held_bytes"),
        released_rss_bytes=released.whole("rss_bytes"),
        took_ms=f.number("took_ms"),
    )


def parse_collect(data: Any, pid: int, what: str = "the collect reply") -> CollectResult:
    """The CollectResult in a decoded `collect` result; AgentError if malformed."""
    f = _Fields(data, what)
    freed, pymalloc_used = f.sub("freed"), f.sub("pymalloc_used")
    return CollectResult(
        pid=pid,
        unreachable=f.whole("unreachable"),
        counts_before=tuple(f.wholes("counts_before")),
        generations=tuple({key: g.whole(key) for key in g.data} for g in f.subs("generations")),
        garbage=f.whole("garbage"),
        before=MemoryState(**_state_fields(f.sub("before"))),
        after=MemoryState(**_state_fields(f.sub("after"))),
        pymalloc_used_before_bytes=pymalloc_used.opt_whole("before"),
        pymalloc_used_after_bytes=pymalloc_used.opt_whole("after"),
        freed_in_use_bytes=freed.opt_whole("in_use_bytes"),
        freed_held_bytes=freed.opt_whole("held_bytes"),
        freed_rss_bytes=freed.whole("rss_bytes"),
        freed_pymalloc_used_bytes=freed.opt_whole("pymalloc_used_bytes"),
        collect_ms=f.number("collect_ms"),
        took_ms=f.number("took_ms"),
    )


def parse_hello(data: Any, what: str = "the hello reply") -> Hello:
    """The Hello in a decoded `hello` result; AgentError if malformed."""
    f = _Fields(data, what)
    return Hello(
        protocol=f.whole("protocol"),
        pid=f.whole("pid"),
        ppid=f.whole("ppid"),
        python=f.text("python"),
        implementation=f.text("implementation"),
        executable=f.text("executable"),
        argv=tuple(f.texts("argv")),
        allocator=f.text("allocator"),
        library=f.opt_text("library"),
    )


class AgentClient:
    """Talks to the agents whose sockets are in `folder` (the run's private agent folder)."""

    def __init__(self, folder: Path, timeout_s: float = SNAPSHOT_TIMEOUT_S) -> None:
        self.folder = folder
        self.timeout_s = timeout_s

    def sockets(self) -> dict[int, Path]:
        """pid -> socket path, for every agent socket in the folder (stale ones included)."""
        found: dict[int, Path] = {}
        try:
            entries = list(self.folder.iterdir())
        except FileNotFoundError:
            return found
        for path in entries:
            pid = protocol.socket_pid(path.name)
            if pid is not None:
                found[pid] = path
        return dict(sorted(found.items()))

    def socket_of(self, pid: int) -> Path | None:
        path = self.folder / protocol.socket_name(pid)
        return path if path.exists() else None

    def request(self, pid: int, payload: Mapping[str, Any], timeout_s: float | None = None) -> Any:
        """The `result` of one request to `pid`'s agent; None if the process has no agent."""
        path = self.socket_of(pid)
        if path is None:
            return None
        timeout = self.timeout_s if timeout_s is None else timeout_s
        op = payload.get("op")
        try:
            line = _exchange(path, json.dumps(payload).encode() + b"\n", timeout)
        except (FileNotFoundError, ConnectionRefusedError):
            return None  # the process is gone (its socket file may stay behind)
        except TimeoutError:
            raise AgentError(
                f"the agent of pid {pid} did not answer {op} within {timeout:g} s "
                "(the process may be stopped, or busy holding the GIL)"
            ) from None
        except OSError as exc:
            raise AgentError(f"cannot talk to the agent of pid {pid}: {exc}") from None
        if not line:
            raise AgentError(f"the agent of pid {pid} closed the connection without answering {op}")
        try:
            reply = json.loads(line)
        except ValueError as exc:
            raise AgentError(
                f"the agent of pid {pid} sent a reply that is not JSON: {exc}"
            ) from None
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            raise AgentError(f"the agent of pid {pid} sent a reply without 'ok': {line[:200]!r}")
        if not reply["ok"]:
            raise AgentError(f"the agent of pid {pid} refused {op}: {reply.get('error')}")
        return reply.get("result")

    def hello(self, pid: int) -> Hello | None:
        """Which process, interpreter and allocator; None without an agent."""
        data = self.request(pid, {"op": "hello"})
        if data is None:
            return None
        hello = parse_hello(data, f"pid {pid}'s hello reply")
        if hello.protocol != protocol.PROTOCOL_VERSION:
            raise AgentError(
                f"the agent of pid {pid} speaks protocol {hello.protocol}, this harness "
                f"{protocol.PROTOCOL_VERSION}; run the sandbox from one checkout"
            )
        return hello

    def snapshot(
        self,
        pid: int,
        *,
        gc_objects: bool = False,
        timeout_s: float | None = None,
        fresh: bool = False,
    ) -> MemorySnapshot | None:
        """The allocator's and the interpreter's counters now (within `timeout_s`, the
        client's own timeout by default; with `fresh`, a pymalloc reading taken for it); None
        without an agent."""
        payload: dict[str, Any] = {"op": "memory", "gc_objects": gc_objects}
        if fresh:
            payload["fresh"] = True
        data = self.request(pid, payload, timeout_s)
        return None if data is None else parse_memory(data, f"pid {pid}'s memory reply")

    def trim(self, pid: int, timeout_s: float = TRIM_TIMEOUT_S) -> TrimResult | None:
        """Ask `pid`'s allocator for its free memory back; None without an agent."""
        data = self.request(pid, {"op": "trim"}, timeout_s)
        return None if data is None else parse_trim(data, pid, f"pid {pid}'s trim reply")

    def collect(self, pid: int, timeout_s: float = COLLECT_TIMEOUT_S) -> CollectResult | None:
        """Run a full garbage collection in `pid`; what it found and freed. None without an
        agent."""
        data = self.request(pid, {"op": "collect"}, timeout_s)
        return None if data is None else parse_collect(data, pid, f"pid {pid}'s collect reply")


def _exchange(path: Path, request: bytes, timeout_s: float) -> bytes:
    """Send one request line, read one reply line, within `timeout_s` overall."""
    deadline = time.monotonic() + timeout_s
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout_s)
        conn.connect(str(path))
        conn.sendall(request)
        chunks: list[bytes] = []
        size = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            conn.settimeout(left)
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if chunk.endswith(b"\n"):
                break
            if size > MAX_REPLY_BYTES:
                raise OSError(f"reply over {MAX_REPLY_BYTES} bytes")
        return b"".join(chunks)
