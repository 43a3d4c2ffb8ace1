from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from starlette.types import Message

from sandbox.allocators import maps as procmaps
from sandbox.config.server_settings import HANDLERS, ServerSettings
from sandbox.server import workloads
from sandbox.server.app import create_app
from tests.asgi import http_scope

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient but still works with httpx.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

PLANS_DIR = Path(__file__).resolve().parents[3] / "plans"
JSON = {"Content-Type": "application/json"}
LIMIT = 1024 * 1024


def client_for(settings: ServerSettings) -> TestClient:
    return TestClient(create_app(settings))


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    settings = ServerSettings(handler=request.param, sleep_ms=0, max_body_bytes=LIMIT)
    with client_for(settings) as c:
        yield c


def payload_size(body: bytes) -> int:
    return len(json.dumps(json.loads(body)["payload"]).encode())


def stats(client: TestClient) -> dict[str, int]:
    data: dict[str, int] = client.get("/stats").json()
    return data


@pytest.mark.parametrize("tag", ["tiny", "small"])
def test_widget_created(client: TestClient, tag: str) -> None:
    body = (PLANS_DIR / f"{tag}.json").read_bytes()
    with client_for(ServerSettings(sleep_ms=0)) as big:  # default cap: the plan bodies fit
        response = big.post("/widgets", content=body, headers=JSON)
    assert response.status_code == 201
    data = response.json()
    assert set(data) == {"id", "size"}
    assert uuid.UUID(data["id"]).version == 4
    assert data["size"] == payload_size(body)


def test_size_is_of_the_reserialised_payload(client: TestClient) -> None:
    body = b'{"eventType": "x", "payload": {"body": [1, 2, {"a": "\\u00e9"}]}}'
    response = client.post("/widgets", content=body, headers=JSON)
    assert response.status_code == 201
    assert response.json()["size"] == len(b'{"body": [1, 2, {"a": "\\u00e9"}]}')


def test_content_type_parameters_are_allowed(client: TestClient) -> None:
    headers = {"Content-Type": "Application/JSON; charset=utf-8"}
    response = client.post("/widgets", content=b'{"payload": {}}', headers=headers)
    assert response.status_code == 201


def test_sync_handler_works_in_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    original = workloads.process

    def process(body: bytes) -> workloads.Widget:
        threads.append(threading.current_thread().name)
        return original(body)

    monkeypatch.setattr(workloads, "process", process)
    for handler in HANDLERS:
        with client_for(ServerSettings(handler=handler, sleep_ms=0)) as c:
            assert c.post("/widgets", content=b'{"payload": {}}', headers=JSON).status_code == 201
    assert threads[0] == "AnyIO worker thread"
    assert threads[1] != "AnyIO worker thread"


BAD_BODIES = {
    "truncated": (b"{", "body is not valid JSON: Expecting property name"),
    "not utf-8": (b'{"payload": {"a": "\xff"}}', "body is not valid UTF-8 (byte 19)"),
    "utf-16": ('{"payload": {}}'.encode("utf-16"), "body is not valid UTF-8"),
    "deep array": (b"[" * 100_000, "body is nested too deeply"),
    "deep object": (b'{"a":' * 100_000, "body is nested too deeply"),
    # parses (under the recursion limit) but is too deep to deep-copy
    "deep payload": (
        b'{"payload": {"a": ' + b"[" * 900 + b"]" * 900 + b"}}",
        "body is nested too deeply",
    ),
    "array": (b"[1, 2]", "body must be a JSON object, not list"),
    "string": (b'"payload"', "body must be a JSON object, not str"),
    "missing payload": (b'{"eventType": "mem-test"}', 'body must have an object under "payload"'),
    "payload not object": (b'{"payload": [1]}', 'body must have an object under "payload"'),
    "empty": (b"", "body is not valid JSON"),
    "huge integer": (b'{"payload": {"n": ' + b"9" * 5000 + b"}}", "body is not valid JSON"),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_bad_body_is_400(client: TestClient, name: str) -> None:
    body, message = BAD_BODIES[name]
    response = client.post("/widgets", content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(message)


def test_deep_payload_is_accepted_when_copyable(client: TestClient) -> None:
    body = b'{"payload": {"a": ' + b"[" * 100 + b"]" * 100 + b"}}"
    assert client.post("/widgets", content=body, headers=JSON).status_code == 201


@pytest.mark.parametrize(
    ("headers", "got"),
    [({"Content-Type": "text/plain"}, "'text/plain'"), ({}, "none")],
)
def test_wrong_content_type_is_415(client: TestClient, headers: dict[str, str], got: str) -> None:
    response = client.post("/widgets", content=b'{"payload": {}}', headers=headers)
    assert response.status_code == 415
    assert response.json() == {"error": f"Content-Type must be application/json, got {got}"}


def test_body_over_cap_is_413(client: TestClient) -> None:
    body = b'{"payload": {"a": "' + b"x" * LIMIT + b'"}}'
    response = client.post("/widgets", content=body, headers=JSON)
    assert response.status_code == 413
    assert response.json() == {
        "error": "body is over the 1,048,576 byte limit; send less or raise MAX_BODY_BYTES"
    }


def test_body_at_cap_is_read(client: TestClient) -> None:
    prefix, suffix = b'{"payload": {"a": "', b'"}}'
    body = prefix + b"x" * (LIMIT - len(prefix) - len(suffix)) + suffix
    assert len(body) == LIMIT
    assert client.post("/widgets", content=body, headers=JSON).status_code == 201


def test_chunked_body_over_cap_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"payload": {"a": "'
        for _ in range(10):
            yield b"x" * (LIMIT // 4)
        yield b'"}}'

    response = client.post("/widgets", content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


def call_asgi(
    settings: ServerSettings, headers: list[tuple[bytes, bytes]], chunks: list[bytes]
) -> tuple[int, int]:
    """POST /widgets straight through ASGI; return the status and how many chunks were read."""
    app = create_app(settings)
    scope = http_scope(
        "POST", "/widgets", headers=[(b"content-type", b"application/json"), *headers]
    )
    read = 0
    status = 0

    async def receive() -> Message:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    asyncio.run(app(scope, receive, send))
    return status, read


def test_declared_length_over_cap_is_413_without_reading() -> None:
    settings = ServerSettings(max_body_bytes=100)
    status, read = call_asgi(settings, [(b"content-length", b"101")], [b"x" * 101])
    assert (status, read) == (413, 0)


def test_stream_stops_at_the_cap() -> None:
    settings = ServerSettings(max_body_bytes=100)
    status, read = call_asgi(settings, [], [b"x" * 60] * 10)
    assert (status, read) == (413, 2)


@pytest.mark.parametrize("value", ["-5", "1e3", "\u00b2"])  # '²'.isdigit(), but int('²') fails
def test_bad_content_length_is_400(value: str) -> None:
    header = value.encode("latin-1")  # as ASGI servers pass header bytes
    status, read = call_asgi(ServerSettings(), [(b"content-length", header)], [b""])
    assert (status, read) == (400, 0)


def test_health(client: TestClient) -> None:
    data = client.get("/health").json()
    assert data["status"] == "ok"
    assert isinstance(data["pid"], int)
    assert data["handler"] in ("sync", "async")
    assert (data["sleep_ms"], data["threads"], data["max_body_bytes"]) == (0, 40, LIMIT)
    assert data["allocator"] == "glibc" or data["allocator"].startswith("lib")
    assert isinstance(data["allocator_libraries"], list)


def test_health_names_the_first_allocator(monkeypatch: pytest.MonkeyPatch) -> None:
    paths = ["/lib/libc.so.6", "/opt/libmimalloc.so.2", "/lib/libjemalloc.so.2"]
    monkeypatch.setattr(procmaps, "mapped_paths", lambda pid=None: paths)
    with client_for(ServerSettings()) as c:
        data = c.get("/health").json()
    assert data["allocator"] == "libmimalloc.so.2"
    assert data["allocator_libraries"] == paths[1:]


def test_stats_count_and_server_survives_bad_input(client: TestClient) -> None:
    assert stats(client) == {"requests_done": 0, "requests_rejected": 0, "in_flight": 0}
    for body, _ in BAD_BODIES.values():
        assert client.post("/widgets", content=body, headers=JSON).status_code == 400
    assert client.post("/widgets", content=b"{}", headers={}).status_code == 415
    assert client.post("/widgets", content=b"x" * (LIMIT + 1), headers=JSON).status_code == 413
    ok = client.post("/widgets", content=b'{"payload": {"still": "alive"}}', headers=JSON)
    assert ok.status_code == 201
    assert stats(client) == {
        "requests_done": 1,
        "requests_rejected": len(BAD_BODIES) + 2,
        "in_flight": 0,
    }


def test_stats_answers_while_the_threadpool_is_saturated() -> None:
    settings = ServerSettings(handler="sync", sleep_ms=600, threads=1)
    with client_for(settings) as c, ThreadPoolExecutor(2) as pool:
        posts = [
            pool.submit(c.post, "/widgets", content=b'{"payload": {}}', headers=JSON)
            for _ in range(2)
        ]
        deadline = time.monotonic() + 5
        while stats(c)["in_flight"] < 2:
            assert time.monotonic() < deadline, "the two requests never became in flight"
            time.sleep(0.01)
        started = time.monotonic()
        assert stats(c)["requests_done"] == 0
        assert time.monotonic() - started < 0.3  # not queued behind the sleeping worker
        assert [p.result().status_code for p in posts] == [201, 201]
        assert stats(c) == {"requests_done": 2, "requests_rejected": 0, "in_flight": 0}
