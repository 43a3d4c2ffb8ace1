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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sandbox.agent import protocol
from sandbox.errors import SandboxError
from sandbox.results.releases import Freed, MemoryState, TrimAnswer
from sandbox.results.shapes import Mismatch, from_plain

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

SNAPSHOT_TIMEOUT_S = 2.0
TRIM_TIMEOUT_S = 30.0
"""malloc_trim walks every arena: seconds on a big, fragmented heap."""
COLLECT_TIMEOUT_S = 60.0
"""A full collection walks every tracked object: about a second per 10 million, more when
finalizers run; twice the trim's time."""
MAX_REPLY_BYTES = 16 * 1024 * 1024

Reply = TypeVar("Reply", bound="DataclassInstance")


class AgentError(SandboxError):
    """An agent is there but did not answer as it should (late, an error, a malformed reply)."""


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
    blocks: int | None = None
    """Blocks in use (pymalloc's share of sys.getallocatedblocks(): the rest are Python's
    blocks from malloc, over 512 bytes)."""


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
class PymallocUsed:
    """pymalloc's bytes in objects before and after a collection; None when pymalloc is off or
    unread."""

    before: int | None
    after: int | None


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
    pymalloc_used: PymallocUsed
    freed: Freed
    """before minus after (None when either is unknown)."""
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


def _read(cls: type[Reply], data: Any, what: str) -> Reply:
    """The reply `data` as `cls`, its shape checked as a result file's is; AgentError naming
    the first bad or missing field."""
    if not isinstance(data, dict):
        raise AgentError(f"{what} is not a JSON object")
    try:
        return from_plain(cls, data)
    except Mismatch as exc:
        raise AgentError(f"{what}: {exc}") from None


def parse_pymalloc(data: Any, what: str) -> tuple[PymallocCounters | None, str | None]:
    """The counters in extra["pymalloc"] (absent: `data` is None), or None and why."""
    if data is None:
        return None, "the agent sent no pymalloc figures"
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return None, f"reading pymalloc failed: {data['error']}"
    if isinstance(data, dict) and isinstance(data.get("unavailable"), str):
        return None, data["unavailable"]
    return _read(PymallocCounters, data, what), None


def parse_memory(data: Any, what: str = "the memory reply") -> MemorySnapshot:
    """The MemorySnapshot in a decoded `memory` result; AgentError if malformed."""
    snap = _read(MemorySnapshot, data, what)
    pymalloc, note = parse_pymalloc(snap.extra.get("pymalloc"), f"{what}'s extra['pymalloc']")
    return replace(snap, pymalloc=pymalloc, pymalloc_note=note)


def parse_trim(data: Any, pid: int, what: str = "the trim reply") -> TrimAnswer:
    """The TrimAnswer in a decoded `trim` result; AgentError if malformed."""
    return _read(TrimAnswer, _with_pid(data, pid), what)


def parse_collect(data: Any, pid: int, what: str = "the collect reply") -> CollectResult:
    """The CollectResult in a decoded `collect` result; AgentError if malformed."""
    return _read(CollectResult, _with_pid(data, pid), what)


def _with_pid(data: Any, pid: int) -> Any:
    """A trim or collect reply names no pid: the one asked."""
    return {**data, "pid": pid} if isinstance(data, dict) else data


def parse_hello(data: Any, what: str = "the hello reply") -> Hello:
    """The Hello in a decoded `hello` result; AgentError if malformed."""
    return _read(Hello, data, what)


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

    def trim(self, pid: int, timeout_s: float = TRIM_TIMEOUT_S) -> TrimAnswer | None:
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
