"""The debug-route client, with a fake transport (and one real loopback call)."""

from __future__ import annotations

import http.server
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from sandbox.measure.server_client import ServerClient
from sandbox.system.loopback import get_json
from tests.local_http import serving

URL = "http://127.0.0.1:8123"


@dataclass
class FakeFetch:
    answers: dict[str, dict[str, Any] | None]
    calls: list[tuple[str, float, str, Mapping[str, str]]] = field(default_factory=list)

    def __call__(
        self, url: str, timeout_s: float, method: str, headers: Mapping[str, str]
    ) -> dict[str, Any] | None:
        self.calls.append((url, timeout_s, method, headers))
        return self.answers.get(url)


@dataclass
class Counter:
    n: int = 0

    def __call__(self) -> None:
        self.n += 1


def client(answers: dict[str, dict[str, Any] | None]) -> tuple[ServerClient, FakeFetch, Counter]:
    fetch, heard = FakeFetch(answers), Counter()
    return ServerClient(URL, on_answer=heard, fetch=fetch), fetch, heard


def test_trim_posts_and_counts_the_answer_as_a_sign_of_life() -> None:
    trim, fetch, heard = client({f"{URL}/debug/trim": {"called": True, "freed_bytes": 10}})
    assert trim.trim() == {"called": True, "freed_bytes": 10}
    assert fetch.calls == [(f"{URL}/debug/trim", 30.0, "POST", {"X-Sandbox-Debug": "1"})]
    assert heard.n == 1


def test_trim_without_the_route_is_empty_and_no_sign_of_life() -> None:
    trim, _, heard = client({})
    assert trim.trim() == {}
    assert heard.n == 0


def test_objects_asks_for_the_top_types_with_a_long_timeout() -> None:
    answer = {"types": [{"type": "dict", "total_bytes": 4096}]}
    objects, fetch, heard = client({f"{URL}/debug/objects?limit=15": answer})
    assert objects.objects() == answer
    assert fetch.calls == [(f"{URL}/debug/objects?limit=15", 120.0, "GET", {})]
    assert heard.n == 1


def test_objects_that_failed_are_none() -> None:
    objects, _, heard = client({})
    assert objects.objects(limit=3) is None
    assert heard.n == 0


def test_the_default_transport_is_the_loopback_opener() -> None:
    assert ServerClient(URL).fetch is get_json


class _Redirecting(http.server.BaseHTTPRequestHandler):
    """POST /debug/trim redirects (303: see other) to GET /followed, which answers JSON:
    followed, it would count as the trim's answer."""

    def do_GET(self) -> None:
        body = json.dumps({"followed": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.send_response(303)
        self.send_header("Location", "/followed")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def redirecting_server() -> Iterator[str]:
    with serving(_Redirecting) as url:
        yield url


def test_a_redirect_is_not_followed(redirecting_server: str) -> None:
    heard = Counter()
    assert ServerClient(redirecting_server, on_answer=heard).trim() == {}
    assert heard.n == 0
