"""The agent's socket, served in this process: replies, bad requests, errors, the folder check."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.agent import channel, ops, protocol
from sandbox.measure.agent_client import AgentClient

on_glibc = pytest.mark.skipif(
    bool(os.environ.get("LD_PRELOAD")), reason="the test process must run on glibc's malloc"
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "agents"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def agent(folder: Path) -> Iterator[channel.Agent]:
    live = channel.Agent(str(folder))
    live.start()
    yield live
    live.close()


def send(agent: channel.Agent, data: bytes) -> dict[str, Any]:
    """Send raw bytes, read the one reply line."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(5)
        conn.connect(agent.path)
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        reply = conn.makefile("rb").readline()
    assert reply.endswith(b"\n")
    decoded: dict[str, Any] = json.loads(reply)
    return decoded


def ask(agent: channel.Agent, request: Any) -> dict[str, Any]:
    return send(agent, json.dumps(request).encode() + b"\n")


def test_socket_is_named_by_pid_and_private(agent: channel.Agent, folder: Path) -> None:
    assert agent.path == str(folder / f"agent-{os.getpid()}.sock")
    info = os.stat(agent.path)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600


@on_glibc
def test_memory_reply(agent: channel.Agent) -> None:
    reply = ask(agent, {"op": "memory"})
    assert (reply["ok"], reply["op"]) == (True, "memory")
    result = reply["result"]
    assert set(result) == {
        "allocator",
        "library",
        "in_use_bytes",
        "held_bytes",
        "raw",
        "note",
        "rss_bytes",
        "python",
        "extra",
        "pid",
        "took_ms",
    }
    assert (result["allocator"], result["library"], result["pid"]) == ("glibc", None, os.getpid())
    assert 0 < result["in_use_bytes"] <= result["held_bytes"] < result["rss_bytes"]
    assert result["python"]["allocated_blocks"] > 0
    assert result["python"]["gc_objects"] is None
    assert set(result["extra"]) == {"pymalloc"}  # the one registered from the start
    assert result["extra"]["pymalloc"]["used_bytes"] > 0


def test_memory_counts_gc_objects_on_request(agent: channel.Agent) -> None:
    result = ask(agent, {"op": "memory", "gc_objects": True})["result"]
    assert result["python"]["gc_objects"] > 1000


def test_extra_counters_are_added_and_their_errors_reported(agent: channel.Agent) -> None:
    def broken() -> int:
        raise RuntimeError("no such counter")

    ops.register_extra("answer", lambda: 42)
    ops.register_extra("broken", broken)
    try:
        extra = ask(agent, {"op": "memory"})["result"]["extra"]
    finally:
        ops.unregister_extra("answer")
        ops.unregister_extra("broken")
    del extra["pymalloc"]
    assert extra == {"answer": 42, "broken": {"error": "RuntimeError: no such counter"}}


@on_glibc
def test_trim_reply(agent: channel.Agent) -> None:
    result = ask(agent, {"op": "trim"})["result"]
    assert set(result) == {"called", "result", "before", "after", "released", "took_ms"}
    assert result["called"] == "malloc_trim(0)"
    assert result["released"]["rss_bytes"] == (
        result["before"]["rss_bytes"] - result["after"]["rss_bytes"]
    )


class _Node:
    """One link of a reference cycle, with a payload big enough to see in malloc's count."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.other: _Node | None = None


def _make_cycles(count: int, payload_bytes: int) -> None:
    """`count` pairs of nodes that refer to each other, dropped at once: garbage that only a
    collection frees (the payloads, over 512 bytes, come from malloc)."""
    for i in range(count):
        a, b = _Node(bytes([i % 256]) * payload_bytes), _Node(b"")
        a.other, b.other = b, a


@on_glibc
def test_collect_finds_the_cycles_and_reports_what_it_freed(agent: channel.Agent) -> None:
    import gc

    gc.collect()
    gc.disable()  # so that the cycles made below wait for the agent's collection
    try:
        _make_cycles(2000, 8192)  # about 16 MiB of payloads
        reply = ask(agent, {"op": "collect"})
    finally:
        gc.enable()
    assert (reply["ok"], reply["op"]) == (True, "collect")
    result = reply["result"]
    assert set(result) == {
        "unreachable",
        "counts_before",
        "generations",
        "garbage",
        "before",
        "after",
        "pymalloc_used",
        "freed",
        "collect_ms",
        "took_ms",
    }
    assert result["unreachable"] >= 2000 * 2  # two nodes a pair (their __dict__s too, < 3.11)
    assert result["counts_before"][0] >= 2000
    assert len(result["generations"]) == 3
    assert set(result["generations"][2]) == {"collections", "collected", "uncollectable"}
    assert result["garbage"] == len(gc.garbage)
    freed = result["freed"]
    assert freed["in_use_bytes"] >= 2000 * 8192
    assert freed["in_use_bytes"] == (
        result["before"]["in_use_bytes"] - result["after"]["in_use_bytes"]
    )
    assert freed["rss_bytes"] == result["before"]["rss_bytes"] - result["after"]["rss_bytes"]
    used = result["pymalloc_used"]
    assert freed["pymalloc_used_bytes"] == used["before"] - used["after"] > 0
    assert 0 <= result["collect_ms"] <= result["took_ms"]


def test_collect_reports_nothing_found_when_there_is_no_garbage(agent: channel.Agent) -> None:
    import gc

    gc.collect()
    result = ask(agent, {"op": "collect"})["result"]
    assert result["unreachable"] < 100  # what the test run itself left in between


@pytest.mark.parametrize("op", ["hello", "ping"])
def test_hello_says_which_process(agent: channel.Agent, op: str) -> None:
    result = ask(agent, {"op": op})["result"]
    assert result["protocol"] == protocol.PROTOCOL_VERSION
    assert (result["pid"], result["ppid"]) == (os.getpid(), os.getppid())
    assert result["python"] == ".".join(map(str, sys.version_info[:3]))
    assert result["argv"] == list(sys.argv)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\n", "request is not JSON: Expecting value: line 1 column 1 (char 0)"),
        (
            b"{op: memory}\n",
            "request is not JSON: Expecting property name enclosed in double "
            "quotes: line 1 column 2 (char 1)",
        ),
        (
            b"\xff\xfe\n",
            "request is not JSON: 'utf-8' codec can't decode byte 0xff in position "
            "0: invalid start byte",
        ),
        (b"[1, 2]\n", 'a request is a JSON object with an "op", e.g. {"op": "memory"}'),
        (b'{"op": 7}\n', 'a request is a JSON object with an "op", e.g. {"op": "memory"}'),
        (
            b'{"op": "rm -rf"}\n',
            "unknown op 'rm -rf'; the agent knows collect, hello, memory, ping, trim",
        ),
        (b'{"op": "memory", "gc_objects": 1}\n', '"gc_objects" and "fresh" must be true or false'),
        (b'{"op": "memory", "fresh": "yes"}\n', '"gc_objects" and "fresh" must be true or false'),
        (b"", "empty request; send one JSON object and a newline"),
        (b"x" * (protocol.MAX_REQUEST_BYTES + 1), "request over 65536 bytes; send one short line"),
    ],
)
def test_bad_requests_get_an_error_reply(agent: channel.Agent, data: bytes, error: str) -> None:
    assert send(agent, data) == {"ok": False, "error": error}
    assert ask(agent, {"op": "ping"})["ok"] is True  # and the agent goes on serving


def test_a_request_without_newline_is_read_to_the_end(agent: channel.Agent) -> None:
    assert send(agent, b'{"op": "ping"}')["ok"] is True


def test_a_request_of_exactly_the_limit_is_read(agent: channel.Agent) -> None:
    line = json.dumps({"op": "ping", "pad": ""}).encode()
    padded = line[:-2] + b"x" * (protocol.MAX_REQUEST_BYTES - len(line)) + b'"}'
    assert len(padded) == protocol.MAX_REQUEST_BYTES
    assert send(agent, padded + b"\n")["ok"] is True


def test_a_silent_client_is_dropped_and_the_next_one_served(agent: channel.Agent) -> None:
    with socket.socket(socket.AF_UNIX) as silent:
        silent.connect(agent.path)
        started = time.monotonic()
        assert ask(agent, {"op": "ping"})["ok"] is True
        waited = time.monotonic() - started
    assert protocol.READ_TIMEOUT_S * 0.8 < waited < protocol.READ_TIMEOUT_S + 2


def test_a_failing_reader_gets_an_error_reply_and_one_log_line(
    agent: channel.Agent, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    def broken(count_objects: bool = False, fresh: bool = False) -> dict[str, Any]:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(ops, "memory", broken)
    for _ in range(3):
        assert ask(agent, {"op": "memory"}) == {
            "ok": False,
            "error": "memory failed: OSError: [Errno 5] Input/output error",
        }
    monkeypatch.undo()
    assert ask(agent, {"op": "memory"})["ok"] is True
    assert capfd.readouterr().err == (
        f"sandbox agent (pid {os.getpid()}): memory failed: OSError(5, 'Input/output error')\n"
    )


def test_close_removes_the_socket_and_stops_the_thread(folder: Path) -> None:
    live = channel.Agent(str(folder))
    live.start()
    assert os.path.exists(live.path)
    live.close()
    assert not os.path.exists(live.path)
    deadline = time.monotonic() + 5
    while any(t.name == "sandbox-agent" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the agent thread did not stop"
        time.sleep(0.01)


def test_a_stale_socket_of_the_same_pid_is_replaced(folder: Path) -> None:
    stale = folder / protocol.socket_name(os.getpid())
    with socket.socket(socket.AF_UNIX) as old:
        old.bind(str(stale))
    live = channel.Agent(str(folder))
    live.start()
    try:
        assert AgentClient(folder).hello(os.getpid()) is not None
    finally:
        live.close()


def test_an_open_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "open"
    folder.mkdir()
    folder.chmod(0o755)
    with pytest.raises(channel.SetupError) as raised:
        channel.Agent(str(folder)).start()
    assert str(raised.value) == (
        f"{folder} has mode 0755; the harness must create it with mode 0700"
    )


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(channel.SetupError) as raised:
        channel.Agent(str(tmp_path / "nowhere")).start()
    assert str(raised.value) == f"cannot use {tmp_path / 'nowhere'}: No such file or directory"


def test_start_never_raises_and_says_why_in_one_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert channel._start_here() is None  # no folder set: nothing to do, nothing said
    channel._folder = str(tmp_path / "nowhere")
    try:
        assert channel._start_here() is None
    finally:
        channel._folder = None
    assert capfd.readouterr().err == (
        f"sandbox agent (pid {os.getpid()}): not started: "
        f"cannot use {tmp_path / 'nowhere'}: No such file or directory\n"
    )


@pytest.mark.parametrize(
    ("name", "pid"),
    [("agent-1.sock", 1), ("agent-4194304.sock", 4194304), ("agent-0.sock", None),
     ("agent-12.sock.tmp", None), ("agent-x.sock", None), ("other-1.sock", None)],
)  # fmt: skip
def test_socket_pid(name: str, pid: int | None) -> None:
    assert protocol.socket_pid(name) == pid
    if pid is not None:
        assert protocol.socket_name(pid) == name
