"""The route without ptrace: finding a process's agent socket, and its answers in inspect's model
(with a fake agent client)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.agent import protocol
from sandbox.errors import InspectError
from sandbox.inspector import agent_route
from sandbox.inspector.pymalloc import Pymalloc
from sandbox.inspector.snapshot import Counters, Trim
from sandbox.measure.agent_client import (
    TRIM_TIMEOUT_S,
    AgentClient,
    AgentError,
    Hello,
    InterpreterCounters,
    MemorySnapshot,
    PymallocCounters,
)
from sandbox.results.releases import MemoryState, Released, TrimAnswer
from sandbox.units import MIB

PID = 4242
RAW = {"arena": 40 * MIB, "uordblks": 25 * MIB, "fordblks": 15 * MIB}
PYMALLOC = PymallocCounters(
    arenas=14,
    arena_bytes=14 * MIB,
    used_bytes=9_567_672,
    free_bytes=2_053_920,
    unused_pool_bytes=1_000_000,
    overhead_bytes=58_984,
    pools=3_000,
    highwater_arenas=20,
    source="_PyObject_DebugMallocStats",
    age_s=0.0,
    every_s=0.5,
    cpu_ms=1.5,
)


def hello(pid: int = PID) -> Hello:
    return Hello(1, pid, 1, "3.11.7", "cpython", "/usr/bin/python3", ("app.py",), "glibc", None)


def state(rss: int, held: int | None) -> MemoryState:
    return MemoryState("glibc", None, 25 * MIB, held, dict(RAW), "mallinfo2()", rss)


def memory(pymalloc: PymallocCounters | None = PYMALLOC) -> MemorySnapshot:
    return MemorySnapshot(
        allocator="glibc",
        library=None,
        in_use_bytes=25 * MIB,
        held_bytes=40 * MIB,
        raw=dict(RAW),
        note="mallinfo2() counts the main heap and arenas",
        rss_bytes=60 * MIB,
        pid=PID,
        python=InterpreterCounters(25_140, (5, 1, 0), None, None, None),
        extra={},
        took_ms=0.7,
        pymalloc=pymalloc,
        pymalloc_note=None if pymalloc else "pymalloc is off (PYTHONMALLOC=malloc)",
    )


TRIMMED = TrimAnswer(
    pid=PID,
    called="malloc_trim(0)",
    result=1,
    before=state(60 * MIB, 40 * MIB),
    after=state(45 * MIB, 27 * MIB),
    released=Released(held_bytes=13 * MIB, rss_bytes=15 * MIB),
    took_ms=12.0,
)


class FakeClient(AgentClient):
    """An agent client that answers from the fields above, and records what it was asked."""

    def __init__(
        self,
        said: Hello | None = None,
        snap: MemorySnapshot | None = None,
        trimmed: TrimAnswer | None = TRIMMED,
        error: AgentError | None = None,
    ) -> None:
        super().__init__(Path("/nonexistent"))
        self.said: Hello | None = hello() if said is None else said
        self.snap: MemorySnapshot | None = memory() if snap is None else snap
        self.trimmed = trimmed
        self.error = error
        self.asked: list[str] = []

    def hello(self, pid: int) -> Hello | None:
        self.asked.append(f"hello {pid}")
        if self.error:
            raise self.error
        return self.said

    def snapshot(
        self,
        pid: int,
        *,
        gc_objects: bool = False,
        timeout_s: float | None = None,
        fresh: bool = False,
    ) -> MemorySnapshot | None:
        self.asked.append(f"snapshot {pid} fresh={fresh}")
        return self.snap

    def trim(self, pid: int, timeout_s: float = TRIM_TIMEOUT_S) -> TrimAnswer | None:
        self.asked.append(f"trim {pid}")
        return self.trimmed


# --- finding the agent --------------------------------------------------------------------------


def test_client_for_without_an_agent_folder() -> None:
    assert agent_route.client_for(PID, None) is None
    assert agent_route.client_for(PID, {}) is None
    assert agent_route.client_for(PID, {protocol.DIR_ENV: ""}) is None


def test_client_for_a_folder_without_its_socket(tmp_path: Path) -> None:
    (tmp_path / protocol.socket_name(PID + 1)).write_bytes(b"")  # another process's
    assert agent_route.client_for(PID, {protocol.DIR_ENV: str(tmp_path)}) is None
    gone = tmp_path / "removed"
    assert agent_route.client_for(PID, {protocol.DIR_ENV: str(gone)}) is None


def test_client_for_a_folder_with_its_socket(tmp_path: Path) -> None:
    (tmp_path / f"agent-{PID}.sock").write_bytes(b"")
    client = agent_route.client_for(PID, {protocol.DIR_ENV: str(tmp_path), "PATH": "/usr/bin"})
    assert isinstance(client, AgentClient)
    assert client.folder == tmp_path
    assert client.socket_of(PID) == tmp_path / f"agent-{PID}.sock"


# --- one look through it --------------------------------------------------------------------


def test_look_maps_the_counters() -> None:
    client = FakeClient()
    found = agent_route.look(PID, client)
    assert found is not None
    assert client.asked == [f"hello {PID}", f"snapshot {PID} fresh=True"]  # no trim unasked
    assert (found.allocator, found.library, found.took_ms, found.trim) == ("glibc", None, 0.7, None)
    assert found.counters == Counters(
        allocator="glibc",
        in_use_bytes=25 * MIB,
        held_bytes=40 * MIB,
        raw=RAW,
        source=agent_route.SOURCE,
        note="mallinfo2() counts the main heap and arenas",
    )
    assert found.counters.free_kept_bytes == 15 * MIB
    python = found.python
    assert (python.version, python.allocated_blocks, python.note) == ("3.11.7", 25_140, None)
    assert python.pymalloc == Pymalloc(
        arenas=14,
        arena_bytes=14 * MIB,
        allocated_bytes=9_567_672,  # pymalloc's used bytes
        available_bytes=2_053_920,  # its free bytes
        highwater_arenas=20,
    )


def test_look_without_pymalloc_keeps_the_agents_reason() -> None:
    found = agent_route.look(PID, FakeClient(snap=memory(pymalloc=None)))
    assert found is not None
    assert found.python.pymalloc is None
    assert found.python.note == "pymalloc is off (PYTHONMALLOC=malloc)"


def test_look_with_a_trim() -> None:
    client = FakeClient()
    found = agent_route.look(PID, client, trim=True)
    assert found is not None
    assert client.asked[-1] == f"trim {PID}"
    assert found.trim == Trim(
        called="malloc_trim(0)",
        result=1,
        rss_before_bytes=60 * MIB,
        rss_after_bytes=45 * MIB,
        held_before_bytes=40 * MIB,
        held_after_bytes=27 * MIB,
    )
    assert found.trim.returned_bytes == 15 * MIB


def test_look_with_a_trim_the_allocator_does_not_have() -> None:
    bare = TrimAnswer(
        PID, None, None, state(60 * MIB, None), state(60 * MIB, None), Released(None, 0), 0.1
    )
    found = agent_route.look(PID, FakeClient(trimmed=bare), trim=True)
    assert found is not None and found.trim is not None
    assert found.trim.called == "nothing (this allocator has no release call)"
    assert (found.trim.result, found.trim.held_before_bytes, found.trim.returned_bytes) == (
        None,
        None,
        0,
    )


def test_look_at_an_agent_of_another_process() -> None:
    client = FakeClient(said=hello(pid=PID + 1))  # a stale socket, its PID reused
    assert agent_route.look(PID, client) is None
    assert client.asked == [f"hello {PID}"]  # nothing more asked of it


def test_look_without_an_agent_after_all() -> None:
    no_agent, no_memory = FakeClient(), FakeClient()
    no_agent.said = None  # nothing answers at the socket
    no_memory.snap = None  # it answered hello, then went away
    assert agent_route.look(PID, no_agent) is None
    assert agent_route.look(PID, no_memory) is None


def test_an_agent_that_fails_says_how_to_avoid_it() -> None:
    error = AgentError(f"the agent of pid {PID} did not answer hello within 2 s")
    with pytest.raises(InspectError) as info:
        agent_route.look(PID, FakeClient(error=error))
    assert str(info.value) == (
        f"the agent of pid {PID} did not answer hello within 2 s; "
        "pass --via gdb to read the process through gdb"
    )
    assert not isinstance(info.value, AgentError)
