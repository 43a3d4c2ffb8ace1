"""Readiness of a user's server: any HTTP answer counts, and redirects are never followed."""

from __future__ import annotations

import http.server
from collections.abc import Iterator

import pytest

from sandbox.system.loopback import answers
from tests.local_http import serving


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/away":  # would leave the machine if followed
            self.send_response(302)
            self.send_header("Location", "http://203.0.113.1/login")
        elif self.path == "/broken":
            self.send_response(503)
        else:
            self.send_response(404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def local_url() -> Iterator[str]:
    with serving(_Handler) as url:
        yield url


def test_a_redirect_is_an_answer_and_is_not_followed(local_url: str) -> None:
    assert answers(f"{local_url}/away", timeout_s=1.0)


def test_a_404_means_up_and_a_503_means_not_ready(local_url: str) -> None:
    assert answers(f"{local_url}/missing")
    assert not answers(f"{local_url}/broken")


def test_nothing_listening_is_not_ready() -> None:
    assert not answers("http://127.0.0.1:9/", timeout_s=0.5)
