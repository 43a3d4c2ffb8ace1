"""Property-based bad input for POST /widgets: whatever a client sends, never a 5xx.

Hypothesis generates bodies (random bytes, truncated and mutated valid bodies, JSON of any shape,
deep nesting) and content types; the server must answer 201, 400, 413 or 415, and keep serving.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.config.server_settings import ServerSettings
from sandbox.server.app import create_app

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

CAP = 64 * 1024
ALLOWED = {201, 400, 413, 415}
VALID = json.dumps(
    {"eventType": "mem-test", "payload": {"body": [{"name": "Ada", "tags": ["a", "b"]}]}}
).encode()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)
bodies = st.one_of(
    st.binary(max_size=2048),
    st.integers(0, len(VALID)).map(lambda n: VALID[:n]),  # truncated
    st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)).map(
        lambda t: VALID[: t[0]] + bytes([t[1]]) + VALID[t[0] + 1 :]  # one byte changed
    ),
    json_values.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps({"eventType": "x", "payload": v}).encode()),
    st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),  # deep nesting
    st.integers(CAP - 16, CAP + 4096).map(lambda n: b" " * n),  # around the cap
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
        "application/json; charset=latin-1",
        "multipart/form-data; boundary=x",
    ]
)


@pytest.fixture(scope="module", params=["sync", "async"])
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    app = create_app(ServerSettings(handler=request.param, sleep_ms=0, max_body_bytes=CAP))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies, content_type=content_types)
def test_no_input_gets_a_server_error(client: TestClient, body: bytes, content_type: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/widgets", content=body, headers=headers)
    assert response.status_code in ALLOWED, (response.status_code, response.text[:200])
    if response.status_code != 201:
        payload: Any = response.json()
        assert isinstance(payload.get("error"), str) and payload["error"]


def test_server_still_serves_after_the_fuzzing(client: TestClient) -> None:
    assert client.get("/health").status_code == 200
    assert (
        client.post(
            "/widgets", content=VALID, headers={"Content-Type": "application/json"}
        ).status_code
        == 201
    )
