"""The bring-your-own-app example, examples/cache_service/app.py, through TestClient.

Its locustfile is never imported here: Locust monkey-patches the process with gevent.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from starlette.applications import Starlette

from examples.cache_service import app as cache_app
from examples.cache_service.app import create_app, env_int
from tests.asgi import http_scope, status_of

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient but still works with httpx.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(max_items=3, max_body_bytes=1000)) as c:
        yield c


def put(client: TestClient, key: str, values: list[Any], name: str = "n") -> int:
    body = {"name": name, "values": values}
    status: int = client.post(f"/items/{key}", content=json.dumps(body), headers=JSON).status_code
    return status


def stats(client: TestClient) -> dict[str, int]:
    data: dict[str, int] = client.get("/stats").json()
    return data


def test_health(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "pid": os.getpid()}


def test_store_then_get(client: TestClient) -> None:
    response = client.post(
        "/items/a", content=b'{"name": "x", "values": [3, 1.5, 2]}', headers=JSON
    )
    assert response.status_code == 201
    assert response.json() == {"key": "a", "items": 1}
    item = client.get("/items/a").json()
    assert item["key"] == "a"
    assert item["name"] == "x"
    assert item["values"] == [3, 1.5, 2]
    assert item["index"]["sorted"] == [1.5, 2.0, 3.0]
    assert item["index"]["stats"] == {
        "count": 3,
        "min": 1.5,
        "max": 3.0,
        "mean": 6.5 / 3,
        "median": 2.0,
    }


def test_empty_values_have_no_stats(client: TestClient) -> None:
    assert put(client, "a", []) == 201
    assert client.get("/items/a").json()["index"]["stats"] == {
        "count": 0,
        "min": None,
        "max": None,
        "mean": None,
        "median": None,
    }


def test_unknown_key_is_404(client: TestClient) -> None:
    response = client.get("/items/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "no item 'nope'"}


def test_oldest_item_is_evicted_at_max_items(client: TestClient) -> None:
    for key in "abcd":
        assert put(client, key, [1]) == 201
    assert client.get("/items/a").status_code == 404
    assert [client.get(f"/items/{key}").status_code for key in "bcd"] == [200, 200, 200]
    assert stats(client)["items"] == 3


def test_a_rewrite_makes_the_item_newest(client: TestClient) -> None:
    for key in "abc":
        put(client, key, [1])
    put(client, "a", [2], name="again")
    put(client, "d", [1])
    assert client.get("/items/b").status_code == 404
    assert client.get("/items/a").json()["name"] == "again"
    assert stats(client)["items"] == 3


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"",
        b"\xff\xfe",
        b"null",
        b"[]",
        b'"name"',
        b'{"values": [1]}',
        b'{"name": 1, "values": [1]}',
        b'{"name": "x"}',
        b'{"name": "x", "values": {"a": 1}}',
        b'{"name": "x", "values": ["1"]}',
        b'{"name": "x", "values": [true]}',
        b'{"name": "x", "values": [null]}',
        b'{"name": "x", "values": [NaN]}',
        b'{"name": "x", "values": [-Infinity]}',
        b'{"name": "x", "values": [1e999]}',
        b'{"name": "x", "values": [1' + b"0" * 400 + b"]}",
        b"[" * 999,
    ],
)
def test_malformed_body_is_400(body: bytes) -> None:
    with TestClient(create_app()) as client:
        response = client.post("/items/a", content=body, headers=JSON)
        assert response.status_code == 400, response.text
        assert "error" in response.json()
        assert stats(client)["items"] == 0


def test_deeply_nested_body_is_400_not_500() -> None:
    with TestClient(create_app(max_body_bytes=1024 * 1024)) as client:
        response = client.post("/items/a", content=b"[" * 500_000, headers=JSON)
    assert response.status_code == 400


def test_body_over_cap_is_413(client: TestClient) -> None:
    body = json.dumps({"name": "x", "values": [1] * 400})
    response = client.post("/items/a", content=body, headers=JSON)
    assert response.status_code == 413
    assert response.json() == {
        "error": "body is over 1,000 bytes; send less or raise CACHE_MAX_BODY_BYTES"
    }


def test_chunked_body_over_cap_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "x", "values": ['
        for _ in range(400):
            yield b"1, "
        yield b"1]}"

    response = client.post("/items/a", content=chunks(), headers=JSON)
    assert response.status_code == 413


@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "text/plain"}, {"Content-Type": "application/jsonx"}],
)
def test_wrong_content_type_is_415(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/items/a", content=b'{"name": "x", "values": []}', headers=headers)
    assert response.status_code == 415


def test_content_type_parameters_are_allowed(client: TestClient) -> None:
    headers = {"Content-Type": "Application/JSON; charset=utf-8"}
    response = client.post("/items/a", content=b'{"name": "x", "values": []}', headers=headers)
    assert response.status_code == 201


def call(app: Starlette, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    """The status of a POST /items/a sent straight through ASGI (for headers httpx won't send)."""
    scope = http_scope(
        "POST", "/items/a", headers=[(b"content-type", b"application/json"), *headers]
    )
    return status_of(app, scope, body)


@pytest.mark.parametrize(
    ("length", "status"),
    [(b"abc", 400), (b"-1", 400), ("\u00b2".encode("latin-1"), 400), (b"9" * 5000, 413)],
)
def test_bad_content_length_is_4xx(length: bytes, status: int) -> None:
    app = create_app()
    assert call(app, [(b"content-length", length)], b'{"name": "x", "values": []}') == status


def test_stats_count_item_requests_of_any_status(client: TestClient) -> None:
    assert stats(client) == {"items": 0, "requests": 0}
    put(client, "a", [1])
    client.get("/items/a")
    client.get("/items/missing")
    client.post("/items/b", content=b"{", headers=JSON)
    client.post("/items/b", content=b"{}", headers={"Content-Type": "text/plain"})
    client.get("/health")
    assert stats(client) == {"items": 1, "requests": 5}


def test_concurrent_puts_from_many_threads() -> None:
    with TestClient(create_app(max_items=50)) as client, ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: put(client, f"k{i % 80}", [i, 1.0]), range(400)))
        assert set(codes) == {201}
        assert stats(client) == {"items": 50, "requests": 400}


def test_env_int(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CACHE_TEST_N", raising=False)
    assert env_int("CACHE_TEST_N", 7) == 7
    monkeypatch.setenv("CACHE_TEST_N", " 12 ")
    assert env_int("CACHE_TEST_N", 7) == 12
    for bad in ("0", "-3", "many", ""):
        monkeypatch.setenv("CACHE_TEST_N", bad)
        with pytest.raises(ValueError) as info:
            env_int("CACHE_TEST_N", 7)
        assert (
            str(info.value) == f"CACHE_TEST_N={bad!r} is not a positive integer; unset it or fix it"
        )


def test_module_level_app_serves() -> None:
    assert isinstance(cache_app.app, Starlette)
    with TestClient(cache_app.app) as client:
        assert client.get("/health").status_code == 200
