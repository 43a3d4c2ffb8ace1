"""The route without ptrace: a process started with the sandbox's agent answers on its socket.

`sandbox run` (and `inject.agent_environ`) starts every Python process of a server with the
agent, which serves the allocator's and CPython's counters, and a trim, on a private Unix
socket: SANDBOX_AGENT_DIR/agent-PID.sock. A look through it never stops the process: no
attach, no registers to put back. It is taken whenever the target has a live agent, unless the
user asks for gdb (`--via gdb`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sandbox.agent import protocol
from sandbox.errors import InspectError
from sandbox.inspector.pymalloc import Pymalloc
from sandbox.inspector.snapshot import Counters, PythonCounters, Trim
from sandbox.measure.agent_client import AgentClient, AgentError, MemorySnapshot
from sandbox.results.releases import MemoryState

SOURCE = "the sandbox's agent inside the process (no attach)"


@dataclass(frozen=True)
class AgentLook:
    """What the agent said, in inspect's model."""

    allocator: str
    library: str | None
    counters: Counters
    python: PythonCounters
    trim: Trim | None
    took_ms: float


def client_for(pid: int, environ: Mapping[str, str] | None) -> AgentClient | None:
    """A client for `pid`'s agent when its environment names an agent folder holding its
    socket; None otherwise."""
    folder = (environ or {}).get(protocol.DIR_ENV)
    if not folder:
        return None
    client = AgentClient(Path(folder))
    return client if client.socket_of(pid) is not None else None


def _counters(state: MemoryState) -> Counters:
    return Counters(
        allocator=state.allocator,
        in_use_bytes=state.in_use_bytes,
        held_bytes=state.held_bytes,
        raw=dict(state.raw),
        source=SOURCE,
        note=state.note,
    )


def _python(version: str, memory: MemorySnapshot) -> PythonCounters:
    pm = memory.pymalloc
    pymalloc = (
        None
        if pm is None
        else Pymalloc(
            arenas=pm.arenas,
            arena_bytes=pm.arena_bytes,
            allocated_bytes=pm.used_bytes,
            available_bytes=pm.free_bytes,
            highwater_arenas=pm.highwater_arenas,
        )
    )
    return PythonCounters(version, memory.python.allocated_blocks, pymalloc, memory.pymalloc_note)


def look(pid: int, client: AgentClient, *, trim: bool = False) -> AgentLook | None:
    """Ask `pid`'s agent; None when it turns out to have none (a stale socket).

    Raises InspectError when the agent is there but does not answer as it should.
    """
    try:
        hello = client.hello(pid)
        if hello is None or hello.pid != pid:
            return None
        memory = client.snapshot(pid, fresh=True)
        trimmed = client.trim(pid) if trim else None
    except AgentError as exc:
        raise InspectError(f"{exc}; pass --via gdb to read the process through gdb") from None
    if memory is None:
        return None
    done = None
    if trimmed is not None:
        done = Trim(
            called=trimmed.called or "nothing (this allocator has no release call)",
            result=trimmed.result,
            rss_before_bytes=trimmed.before.rss_bytes,
            rss_after_bytes=trimmed.after.rss_bytes,
            held_before_bytes=trimmed.before.held_bytes,
            held_after_bytes=trimmed.after.held_bytes,
        )
    return AgentLook(
        allocator=memory.allocator,
        library=memory.library,
        counters=_counters(memory),
        python=_python(hello.python, memory),
        trim=done,
        took_ms=memory.took_ms,
    )
