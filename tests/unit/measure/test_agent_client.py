"""The harness's agent client: finding sockets, typed replies, and every way an agent can fail."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.agent import channel, protocol
from sandbox.measure.agent_client import (
    AgentClient,
    AgentError,
    MemorySnapshot,
    PymallocCounters,
    parse_collect,
    parse_hello,
    parse_memory,
)

FakeAgent = Callable[[int, bytes | None], None]
"""Serve `pid`'s socket with a canned reply (None: accept, read, never answer)."""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "agents"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def fake_agent(folder: Path) -> Iterator[FakeAgent]:
    listeners: list[socket.socket] = []
    release = threading.Event()

    def serve(listener: socket.socket, reply: bytes | None) -> None:
        with listener:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                if reply is None:
                    release.wait(10)
                else:
                    conn.sendall(reply)

    def start(pid: int, reply: bytes | None) -> None:
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(folder / protocol.socket_name(pid)))
        listener.listen(1)
        listeners.append(listener)
        threading.Thread(target=serve, args=(listener, reply), daemon=True).start()

    yield start
    release.set()
    for listener in listeners:
        listener.close()


@pytest.fixture
def agent(folder: Path) -> Iterator[channel.Agent]:
    live = channel.Agent(str(folder))
    live.start()
    yield live
    live.close()


def test_sockets_maps_pids_to_paths_and_ignores_other_files(folder: Path) -> None:
    for name in ("agent-12.sock", "agent-7.sock", "agent-x.sock", "notes.txt", "agent-3.sock~"):
        (folder / name).touch()
    assert AgentClient(folder).sockets() == {
        7: folder / "agent-7.sock",
        12: folder / "agent-12.sock",
    }


def test_a_missing_folder_has_no_sockets(tmp_path: Path) -> None:
    assert AgentClient(tmp_path / "nowhere").sockets() == {}


def test_a_process_without_an_agent_gives_none(folder: Path) -> None:
    client = AgentClient(folder)
    assert (client.hello(1), client.snapshot(1), client.trim(1)) == (None, None, None)


def test_a_stale_socket_gives_none(folder: Path) -> None:
    with socket.socket(socket.AF_UNIX) as gone:  # bound, then closed: connect is refused
        gone.bind(str(folder / protocol.socket_name(99)))
    assert AgentClient(folder).snapshot(99) is None


def test_real_agent_replies_are_typed(agent: channel.Agent, folder: Path) -> None:
    client = AgentClient(folder)
    pid = os.getpid()
    hello = client.hello(pid)
    assert hello is not None
    assert (hello.pid, hello.ppid, hello.protocol) == (pid, os.getppid(), protocol.PROTOCOL_VERSION)
    snap = client.snapshot(pid)
    assert isinstance(snap, MemorySnapshot)
    assert snap.pid == pid and snap.rss_bytes > 0 and snap.python.allocated_blocks > 0
    assert len(snap.python.gc_counts) == 3 and snap.python.gc_objects is None
    assert snap.allocator == hello.allocator
    counted = client.snapshot(pid, gc_objects=True)
    assert counted is not None and counted.python.gc_objects is not None
    trim = client.trim(pid)
    assert trim is not None and trim.pid == pid
    assert trim.released.rss_bytes == trim.before.rss_bytes - trim.after.rss_bytes
    collected = client.collect(pid)
    assert collected is not None and collected.pid == pid
    assert collected.unreachable >= 0 and len(collected.counts_before) == 3
    assert collected.freed.rss_bytes == collected.before.rss_bytes - collected.after.rss_bytes


def test_an_agent_that_does_not_answer_times_out(folder: Path, fake_agent: FakeAgent) -> None:
    fake_agent(5, None)
    with pytest.raises(AgentError) as raised:
        AgentClient(folder, timeout_s=0.2).snapshot(5)
    assert str(raised.value) == (
        "the agent of pid 5 did not answer memory within 0.2 s "
        "(the process may be stopped, or busy holding the GIL)"
    )


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b'{"ok": false, "error": "memory failed: boom"}\n',
         "the agent of pid 5 refused memory: memory failed: boom"),
        (b"<html>\n", "the agent of pid 5 sent a reply that is not JSON: Expecting value: "
         "line 1 column 1 (char 0)"),
        (b"", "the agent of pid 5 closed the connection without answering memory"),
        (b'{"result": {}}\n',
         "the agent of pid 5 sent a reply without 'ok': b'{\"result\": {}}\\n'"),
        (b'{"ok": true, "result": {"pid": 5}}\n', "pid 5's memory reply: allocator is missing"),
    ],
)  # fmt: skip
def test_bad_replies_raise(folder: Path, fake_agent: FakeAgent, reply: bytes, message: str) -> None:
    fake_agent(5, reply)
    with pytest.raises(AgentError) as raised:
        AgentClient(folder).snapshot(5)
    assert str(raised.value) == message


def test_another_protocol_is_refused(
    folder: Path, fake_agent: FakeAgent, agent: channel.Agent
) -> None:
    hello = AgentClient(folder).request(os.getpid(), {"op": "hello"})
    hello["protocol"] = protocol.PROTOCOL_VERSION + 1
    fake_agent(5, json.dumps({"ok": True, "result": hello}).encode() + b"\n")
    with pytest.raises(AgentError) as raised:
        AgentClient(folder).hello(5)
    assert str(raised.value) == (
        f"the agent of pid 5 speaks protocol {protocol.PROTOCOL_VERSION + 1}, this harness "
        f"{protocol.PROTOCOL_VERSION}; run the sandbox from one checkout"
    )


PYMALLOC: dict[str, Any] = {
    "arenas": 4,
    "arena_bytes": 4194304,
    "used_bytes": 2819008,
    "free_bytes": 304784,
    "unused_pool_bytes": 1015808,
    "overhead_bytes": 54704,
    "pools": 192,
    "pool_bytes": 16384,
    "arena_size_bytes": 1048576,
    "highwater_arenas": 4,
    "source": "_PyObject_DebugMallocStats",
    "took_ms": 0.319,
    "cpu_ms": 0.314,
    "age_s": 0.2,
    "every_s": 0.5,
}


def memory_result() -> dict[str, Any]:
    return {
        "allocator": "jemalloc",
        "library": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
        "in_use_bytes": 10,
        "held_bytes": 20,
        "raw": {"stats.allocated": 10, "stats.resident": 20},
        "note": None,
        "rss_bytes": 30,
        "python": {
            "allocated_blocks": 4,
            "gc_counts": [1, 2, 3],
            "gc_objects": None,
            "tracemalloc_bytes": None,
            "tracemalloc_peak_bytes": None,
        },
        "extra": {"pymalloc": dict(PYMALLOC)},
        "pid": 5,
        "took_ms": 0.1,
    }


def test_parse_memory() -> None:
    snap = parse_memory(memory_result())
    assert (snap.allocator, snap.in_use_bytes, snap.held_bytes, snap.rss_bytes) == (
        "jemalloc",
        10,
        20,
        30,
    )
    assert snap.raw == {"stats.allocated": 10, "stats.resident": 20}
    assert snap.python.gc_counts == (1, 2, 3)
    assert snap.extra == {"pymalloc": PYMALLOC}
    assert snap.pymalloc == PymallocCounters(
        arenas=4,
        arena_bytes=4194304,
        used_bytes=2819008,
        free_bytes=304784,
        unused_pool_bytes=1015808,
        overhead_bytes=54704,
        pools=192,
        highwater_arenas=4,
        source="_PyObject_DebugMallocStats",
        age_s=0.2,
        every_s=0.5,
        cpu_ms=0.314,
    )
    assert snap.pymalloc_note is None


@pytest.mark.parametrize(
    ("reading", "note"),
    [
        (
            {"unavailable": "pymalloc is not in use (PYTHONMALLOC=malloc): ...", "source": None},
            "pymalloc is not in use (PYTHONMALLOC=malloc): ...",
        ),
        ({"error": "ValueError: no totals"}, "reading pymalloc failed: ValueError: no totals"),
        (None, "the agent sent no pymalloc figures"),
    ],
)
def test_pymalloc_without_figures_is_none_with_the_reason(
    reading: dict[str, Any] | None, note: str
) -> None:
    extra = {} if reading is None else {"pymalloc": reading}
    snap = parse_memory({**memory_result(), "extra": extra})
    assert (snap.pymalloc, snap.pymalloc_note) == (None, note)


def test_a_malformed_pymalloc_reading_names_the_field() -> None:
    extra = {"pymalloc": {**PYMALLOC, "used_bytes": "2,819,008"}}
    with pytest.raises(AgentError) as raised:
        parse_memory({**memory_result(), "extra": extra})
    assert str(raised.value) == (
        "the memory reply's extra['pymalloc']: used_bytes has value '2,819,008'; "
        "expected a whole number"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"in_use_bytes": True},
            "the memory reply: in_use_bytes has value True; expected a whole number or null",
        ),
        (
            {"rss_bytes": None},
            "the memory reply: rss_bytes has value None; expected a whole number",
        ),
        (
            {"raw": {"arena": "1"}},
            "the memory reply: raw.arena has value '1'; expected a whole number",
        ),
        ({"python": []}, "the memory reply: python has value []; expected a mapping"),
        ({"took_ms": "0.1"}, "the memory reply: took_ms has value '0.1'; expected a number"),
    ],
)
def test_parse_memory_names_the_bad_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(AgentError) as raised:
        parse_memory({**memory_result(), **change})
    assert str(raised.value) == message


def test_parse_hello_names_the_bad_field() -> None:
    with pytest.raises(AgentError) as raised:
        parse_hello({"protocol": 1, "pid": 5, "ppid": 1, "python": "3.8.18",
                     "implementation": "cpython", "executable": "/x", "argv": ["-c", 1],
                     "allocator": "glibc", "library": None})  # fmt: skip
    assert str(raised.value) == "the hello reply: argv[1] has value 1; expected a string"


def collect_result() -> dict[str, Any]:
    state = {k: v for k, v in memory_result().items() if k not in ("python", "extra", "pid")}
    del state["took_ms"]
    return {
        "unreachable": 1234567,
        "counts_before": [650, 3, 1],
        "generations": [
            {"collections": 90, "collected": 5, "uncollectable": 0},
            {"collections": 8, "collected": 0, "uncollectable": 0},
            {"collections": 1, "collected": 1234567, "uncollectable": 0},
        ],
        "garbage": 0,
        "before": {**state, "in_use_bytes": 300, "rss_bytes": 900},
        "after": {**state, "in_use_bytes": 100, "rss_bytes": 880},
        "pymalloc_used": {"before": 70, "after": 40},
        "freed": {
            "in_use_bytes": 200,
            "held_bytes": 0,
            "rss_bytes": 20,
            "pymalloc_used_bytes": 30,
        },
        "collect_ms": 840.5,
        "took_ms": 841.0,
    }


def test_parse_collect() -> None:
    found = parse_collect(collect_result(), pid=7)
    assert (found.pid, found.unreachable, found.counts_before, found.garbage) == (
        7,
        1234567,
        (650, 3, 1),
        0,
    )
    assert found.generations[2] == {"collections": 1, "collected": 1234567, "uncollectable": 0}
    assert (found.before.in_use_bytes, found.after.in_use_bytes) == (300, 100)
    assert (found.pymalloc_used.before, found.pymalloc_used.after) == (70, 40)
    assert (found.freed.in_use_bytes, found.freed.rss_bytes, found.freed.pymalloc_used_bytes) == (
        200,
        20,
        30,
    )
    assert (found.collect_ms, found.took_ms) == (840.5, 841.0)


def test_parse_collect_without_pymalloc_or_an_in_use_count() -> None:
    data = collect_result()
    data["pymalloc_used"] = {"before": None, "after": None}
    data["freed"] = {**data["freed"], "in_use_bytes": None, "pymalloc_used_bytes": None}
    found = parse_collect(data, pid=7)
    assert found.pymalloc_used.before is None and found.freed.pymalloc_used_bytes is None
    assert found.freed.in_use_bytes is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"unreachable": "many"},
            "the collect reply: unreachable has value 'many'; expected a whole number",
        ),
        (
            {"counts_before": [1, "2"]},
            "the collect reply: counts_before[1] has value '2'; expected a whole number",
        ),
        (
            {"generations": [{"collections": 1.5}]},
            "the collect reply: generations[0].collections has value 1.5; expected a whole number",
        ),
        (
            {"generations": ["x"]},
            "the collect reply: generations[0] has value 'x'; expected a mapping",
        ),
        ({"freed": {"in_use_bytes": 1}}, "the collect reply: freed.held_bytes is missing"),
        (
            {"pymalloc_used": None},
            "the collect reply: pymalloc_used has value None; expected a mapping",
        ),
    ],
)
def test_parse_collect_names_the_bad_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(AgentError) as raised:
        parse_collect({**collect_result(), **change}, pid=7)
    assert str(raised.value) == message
