from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from sandbox.config.server_settings import DEBUG_HEADER, ServerSettings
from sandbox.server.app import create_app
from sandbox.server.guards import is_loopback
from sandbox.units import MIB
from tests.asgi import http_scope, status_of

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

JSON = {"Content-Type": "application/json"}
LOOPBACK = ("127.0.0.1", 50000)
DEBUG_ROUTES = [
    ("GET", "/debug/memory"),
    ("POST", "/debug/trim"),
    ("POST", "/debug/hold?mib=1"),
    ("POST", "/debug/release"),
    ("GET", "/debug/objects?limit=1"),
]
SNAPSHOT_KEYS = {"allocator", "library", "in_use_bytes", "held_bytes", "raw", "note", "rss_bytes"}
on_glibc = pytest.mark.skipif(
    bool(os.environ.get("LD_PRELOAD")), reason="the test process must run on glibc's malloc"
)


BASE_URL = "http://127.0.0.1:3000"  # TestClient's default Host, testserver, is refused
DEBUG = {DEBUG_HEADER: "1"}


def debug_client(app: Any, client: tuple[str, int] = LOOPBACK) -> TestClient:
    """A TestClient that calls as the harness does: from and to loopback, with the header."""
    return TestClient(app, client=client, base_url=BASE_URL, headers=DEBUG)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with debug_client(create_app(ServerSettings(sleep_ms=0))) as c:
        yield c


def in_use(client: TestClient) -> int:
    value: int = client.get("/debug/memory").json()["in_use_bytes"]
    return value


@on_glibc
def test_memory(client: TestClient) -> None:
    response = client.get("/debug/memory")
    assert response.status_code == 200
    data = response.json()
    assert set(data) == SNAPSHOT_KEYS | {"python", "took_ms"}
    assert (data["allocator"], data["library"]) == ("glibc", None)
    assert 0 < data["in_use_bytes"] <= data["held_bytes"] < data["rss_bytes"]
    assert data["raw"]["fordblks"] == data["held_bytes"] - data["in_use_bytes"]
    assert set(data["python"]) == {
        "allocated_blocks",
        "gc_counts",
        "gc_objects",
        "tracemalloc_bytes",
        "tracemalloc_peak_bytes",
    }
    assert data["python"]["gc_objects"] is None
    assert 0 <= data["took_ms"] < 100


def test_memory_counts_gc_objects_on_request(client: TestClient) -> None:
    data = client.get("/debug/memory?gc_objects=1").json()
    assert data["python"]["gc_objects"] > 1000


@on_glibc
def test_hold_and_release(client: TestClient) -> None:
    before = in_use(client)
    response = client.post("/debug/hold?mib=8")
    assert response.status_code == 201
    assert response.json()["added_mib"] == 8
    assert response.json()["held_mib"] == 8
    assert client.post("/debug/hold?mib=2").json()["held_mib"] == 10
    assert in_use(client) - before == pytest.approx(10 * MIB, rel=0.1)
    response = client.post("/debug/release")
    assert response.status_code == 200
    assert response.json() == {"released_mib": 10, "held_mib": 0}
    assert abs(in_use(client) - before) < 2 * MIB


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "missing ?mib=N (a whole number from 0 to 65536)"),
        ("?mib=", "?mib='' is not a whole number from 0 to 65536"),
        ("?mib=-1", "?mib='-1' is not a whole number from 0 to 65536"),
        ("?mib=1.5", "?mib='1.5' is not a whole number from 0 to 65536"),
        ("?mib=65537", "?mib='65537' is not a whole number from 0 to 65536"),
    ],
)
def test_hold_bad_size_is_400(client: TestClient, query: str, message: str) -> None:
    response = client.post(f"/debug/hold{query}")
    assert response.status_code == 400
    assert response.json() == {"error": message}


@on_glibc
def test_trim(client: TestClient) -> None:
    response = client.post("/debug/trim")
    assert response.status_code == 200
    data = response.json()
    assert set(data) == {"called", "result", "before", "after", "released", "took_ms"}
    assert data["called"] == "malloc_trim(0)"
    assert data["result"] in (0, 1)
    assert set(data["before"]) == SNAPSHOT_KEYS == set(data["after"])
    assert data["released"] == {
        "held_bytes": data["before"]["held_bytes"] - data["after"]["held_bytes"],
        "rss_bytes": data["before"]["rss_bytes"] - data["after"]["rss_bytes"],
    }


def test_objects(client: TestClient) -> None:
    response = client.get("/debug/objects?limit=3")
    assert response.status_code == 200
    data = response.json()
    assert data["limit"] == 3
    assert len(data["types"]) == 3
    assert set(data["types"][0]) == {"type", "count", "total_bytes"}
    assert data["took_ms"] > 0


def test_objects_bad_limit_is_400(client: TestClient) -> None:
    response = client.get("/debug/objects?limit=0")
    assert response.status_code == 400
    assert response.json() == {"error": "?limit='0' is not a whole number from 1 to 1000"}


@pytest.mark.parametrize(("method", "path"), DEBUG_ROUTES)
@pytest.mark.parametrize("host", ["203.0.113.7", "testclient", "::ffff:10.0.0.1"])
def test_non_loopback_client_is_403(method: str, path: str, host: str) -> None:
    app = create_app(ServerSettings(sleep_ms=0))
    with debug_client(app, client=(host, 50000)) as c:
        response = c.request(method, path)
    assert response.status_code == 403
    assert response.json() == {
        "error": f"/debug answers loopback clients only, not {host}; "
        "send the request from the server's own host (e.g. to 127.0.0.1)"
    }


def test_refused_client_cannot_hold_memory() -> None:
    app = create_app(ServerSettings(sleep_ms=0))
    with debug_client(app, client=("203.0.113.7", 1)) as outsider:
        assert outsider.post("/debug/hold?mib=64").status_code == 403
    with debug_client(app) as c:
        assert c.post("/debug/release").json() == {"released_mib": 0, "held_mib": 0}


def asgi_get(path: str, client: tuple[str, int] | None) -> int:
    """GET `path` straight through ASGI with `client` in the scope; return the status."""
    app = create_app(ServerSettings(sleep_ms=0))
    scope = http_scope("GET", path, client=client)
    return status_of(app, scope)


@pytest.mark.parametrize(
    ("client", "status"),
    [
        (("127.0.0.1", 1), 200),
        (("127.8.9.10", 1), 200),
        (("::1", 1), 200),
        (("::ffff:127.0.0.1", 1), 200),
        (("192.168.1.10", 1), 403),
        (("fe80::1", 1), 403),
        (None, 403),  # no peer address (e.g. a server on a Unix socket): refused
    ],
)
def test_scope_client_decides(client: tuple[str, int] | None, status: int) -> None:
    assert asgi_get("/debug/memory", client) == status


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1", True), ("::1", True), ("0.0.0.0", False), ("localhost", False), (None, False)],
)
def test_is_loopback(host: str | None, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_memory_answers_while_the_threadpool_is_saturated() -> None:
    settings = ServerSettings(handler="sync", sleep_ms=600, threads=1)
    with (
        debug_client(create_app(settings)) as c,
        ThreadPoolExecutor(2) as pool,
    ):
        posts = [
            pool.submit(c.post, "/widgets", content=b'{"payload": {}}', headers=JSON)
            for _ in range(2)
        ]
        deadline = time.monotonic() + 5
        while c.get("/stats").json()["in_flight"] < 2:
            assert time.monotonic() < deadline, "the two requests never became in flight"
            time.sleep(0.01)
        started = time.monotonic()
        assert c.get("/debug/memory").status_code == 200
        assert c.post("/debug/trim").status_code == 200
        assert time.monotonic() - started < 0.3  # not queued behind the sleeping worker
        assert [p.result().status_code for p in posts] == [201, 201]
