"""The known truths: each keeps what it says (objects, bytes), the caps hold under the threadpool,
and with the defaults the handler runs exactly as before and keeps nothing."""

from __future__ import annotations

import gc
import json
import sys
import threading
import tracemalloc
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from sandbox.config.server_settings import HANDLERS, ServerSettings
from sandbox.server import app as app_module
from sandbox.server import truths, workloads
from sandbox.server.app import create_app
from sandbox.server.truths import PINS_PER_REQUEST, Keeper
from sandbox.units import KIB

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

JSON = {"Content-Type": "application/json"}
BODY = json.dumps({"eventType": "t", "payload": {"rows": [{"n": i} for i in range(50)]}}).encode()
HEADER = sys.getsizeof(b"")


def body(serial: int) -> bytes:
    return json.dumps({"serial": serial, "payload": {"x": "y" * 40}}).encode()


# --- the objects ----------------------------------------------------------------------------


@pytest.mark.parametrize("total", [1, 200, 256, 1000, 30 * KIB, 30 * KIB + 5, 30 * KIB + 40])
def test_a_small_leak_is_its_amount_in_pymallocs_objects(total: int) -> None:
    chunks = workloads.leak_chunks(total, "small")
    sizes = [sys.getsizeof(c) for c in chunks]
    assert sum(sizes) == max(total, HEADER + 8)  # a tiny amount: one object, the smallest
    assert all(HEADER + 8 <= s <= 512 for s in sizes)
    assert len({id(c) for c in chunks}) == len(chunks)  # new objects, not one shared


@pytest.mark.parametrize("total", [100, 600, 16 * KIB, 30 * KIB, 30 * KIB + 100, 1024 * KIB])
def test_a_large_leak_is_its_amount_in_malloc_sized_buffers(total: int) -> None:
    chunks = workloads.leak_chunks(total, "large")
    sizes = [sys.getsizeof(c) for c in chunks]
    assert sum(sizes) == max(total, 513)
    assert all(512 < s <= workloads.LARGE_CHUNK_BYTES + 512 for s in sizes)
    assert all(c.count(0xA5) == len(c) for c in chunks)  # written through: resident


def test_pins_are_small_and_take_the_sizes_in_turn() -> None:
    made = workloads.pins(3, 5)
    sizes = [sys.getsizeof(p) for p in made]
    assert sizes == [392, 112, 200, 296, 392]
    assert all(100 <= s <= 400 for s in sizes)


def test_process_calls_between_after_the_parse_and_after_the_clone() -> None:
    seen: list[int] = []
    widget = workloads.process(BODY, lambda: seen.append(len(seen)))
    assert seen == [0, 1]
    assert widget == workloads.process(BODY)


def test_a_refused_body_pins_nothing() -> None:
    seen: list[int] = []
    with pytest.raises(workloads.BadRequest):
        workloads.process(b"[1]", lambda: seen.append(1))
    assert seen == []


# --- what a Keeper keeps --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["small", "large"])
def test_a_leak_keeps_its_amount_for_every_request(kind: str) -> None:
    keeper = Keeper(ServerSettings(leak_bytes=30 * KIB, leak_kind=kind))  # type: ignore[arg-type]
    for _ in range(40):
        keeper.process(BODY)
    per_request = workloads.leak_chunks(30 * KIB, kind)
    kept = keeper.kept()
    assert kept.leaked_objects == 40 * len(per_request)
    assert kept.leaked_bytes == 40 * 30 * KIB
    assert (kept.cached_docs, kept.pinned_objects, kept.pinned_bytes) == (0, 0, 0)


@pytest.mark.parametrize("kind", ["small", "large"])
def test_a_leak_really_holds_its_memory(kind: str) -> None:
    """tracemalloc sees the amount stay allocated once each request's own objects are gone."""
    keeper = Keeper(ServerSettings(leak_bytes=30 * KIB, leak_kind=kind))  # type: ignore[arg-type]
    keeper.process(BODY)  # the first request's one-off allocations
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(100):
            keeper.process(BODY)
        gc.collect()
        grew = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    expected = 100 * 30 * KIB
    assert expected <= grew <= expected * 1.1  # plus the list's pointers


def test_the_cache_keeps_the_last_documents_and_evicts_the_oldest() -> None:
    keeper = Keeper(ServerSettings(cache_docs=5))
    for serial in range(12):
        keeper.process(body(serial))
    assert keeper.kept().cached_docs == 5
    assert [d["serial"] for d in keeper._cache] == [7, 8, 9, 10, 11]
    assert keeper.kept().leaked_objects == keeper.kept().pinned_objects == 0


def test_pinning_keeps_four_small_objects_a_request_up_to_the_cap() -> None:
    keeper = Keeper(ServerSettings(pin_objects=30))
    for _ in range(3):
        keeper.process(BODY)
    assert keeper.kept().pinned_objects == 3 * PINS_PER_REQUEST
    for _ in range(20):
        keeper.process(BODY)
    kept = keeper.kept()
    assert kept.pinned_objects == 30
    assert kept.pinned_bytes == sum(sys.getsizeof(p) for p in keeper._pins)
    assert 100 * 30 <= kept.pinned_bytes <= 400 * 30
    assert (kept.leaked_objects, kept.cached_docs) == (0, 0)


def test_the_counts_and_caps_hold_under_many_threads() -> None:
    settings = ServerSettings(leak_bytes=1000, cache_docs=7, pin_objects=50)
    keeper = Keeper(settings)
    per_thread, threads = 150, 8
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait()
        for serial in range(per_thread):
            keeper.process(body(serial))

    workers = [threading.Thread(target=work) for _ in range(threads)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    kept = keeper.kept()
    requests = per_thread * threads
    assert kept.leaked_objects == requests * len(workloads.leak_chunks(1000, "small"))
    assert kept.leaked_bytes == requests * 1000
    assert (kept.cached_docs, kept.pinned_objects) == (7, 50)


# --- the handler ----------------------------------------------------------------------------


def post(client: TestClient, content: bytes) -> int:
    status: int = client.post("/widgets", content=content, headers=JSON).status_code
    return status


@pytest.mark.parametrize("handler", HANDLERS)
def test_the_default_handler_makes_no_keeper_and_calls_process_as_before(
    handler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, ...]] = []
    original = workloads.process

    def process(*args: Any) -> workloads.Widget:
        calls.append(args)
        return original(*args)

    def no_keeper(settings: ServerSettings) -> None:
        raise AssertionError("a Keeper was made with the truths off")

    monkeypatch.setattr(workloads, "process", process)
    monkeypatch.setattr(app_module, "Keeper", no_keeper)
    settings = ServerSettings(handler=handler, sleep_ms=0)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as client:
        assert [post(client, BODY) for _ in range(3)] == [201] * 3
        answer = client.get("/stats").json()
    assert calls == [(BODY,)] * 3  # one argument: no pinning hook
    assert answer == {"requests_done": 3, "requests_rejected": 0, "in_flight": 0}


@pytest.mark.parametrize("handler", HANDLERS)
def test_with_truths_on_stats_say_what_is_kept(handler: str) -> None:
    settings = ServerSettings(
        handler=handler,  # type: ignore[arg-type]
        sleep_ms=0,
        leak_bytes=2 * KIB,
        cache_docs=2,
        pin_objects=6,
    )
    with TestClient(create_app(settings)) as client:
        assert [post(client, BODY) for _ in range(3)] == [201] * 3
        assert post(client, b'{"payload": 1}') == 400  # refused: keeps nothing
        answer = client.get("/stats").json()
    assert answer["requests_done"] == 3
    assert answer["kept"] == {
        "leaked_objects": 3 * len(workloads.leak_chunks(2 * KIB, "small")),
        "leaked_bytes": 3 * 2 * KIB,
        "cached_docs": 2,
        "pinned_objects": 6,
        "pinned_bytes": answer["kept"]["pinned_bytes"],
    }
    assert 600 <= answer["kept"]["pinned_bytes"] <= 2400


def test_the_keeper_is_the_apps_own() -> None:
    """Two apps (two servers' worth) keep apart: nothing is shared at module level."""
    made: list[Keeper] = []
    original: Callable[[ServerSettings], Keeper] = truths.Keeper

    def keeper(settings: ServerSettings) -> Keeper:
        made.append(original(settings))
        return made[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(app_module, "Keeper", keeper)
        settings = ServerSettings(handler="async", sleep_ms=0, cache_docs=3)
        with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
            post(one, BODY)
            post(two, BODY)
            post(two, BODY)
    assert [k.kept().cached_docs for k in made] == [1, 2]
