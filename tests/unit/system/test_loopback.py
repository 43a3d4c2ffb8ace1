"""One HTTP opener for every loopback call: no proxy from the environment, no redirects, and no
other HTTP client anywhere in the harness."""

from __future__ import annotations

import ast
import http.server
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.measure.server_client import ServerClient
from sandbox.system.loopback import answers, get_json
from tests.local_http import serving

REPO = Path(__file__).resolve().parents[3]
# Names that would make an HTTP call without the opener (or its settings); a
# urllib.request.Request is only a request, sent through the opener.
OTHER_CLIENTS = {"urlopen", "build_opener", "install_opener", "HTTPConnection", "HTTPSConnection"}
OTHER_MODULES = {"httpx", "requests", "aiohttp", "urllib3", "http.client"}


def _calls_outside_the_opener(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name in OTHER_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module in ("urllib.request", "http.client"):
            found += [
                f"from {node.module} import {a.name}" for a in node.names if a.name in OTHER_CLIENTS
            ]
        elif isinstance(node, ast.ImportFrom) and node.module in OTHER_MODULES:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Attribute) and node.attr in OTHER_CLIENTS:
            found.append(f"{ast.unparse(node)} (line {node.lineno})")
    return found


# Modules allowed their own client, and why.
ALLOWED = {
    "sandbox/system/loopback.py": "the opener itself",
    # Keep-alive connections, one per simulated user, for a paired load without Locust's own
    # cost; http.client reads no proxy settings and follows no redirects.
    "benchmarks/agent_overhead.py": "a keep-alive load generator",
}


def test_no_harness_module_makes_http_calls_but_through_the_opener() -> None:
    modules = sorted((REPO / "sandbox").rglob("*.py")) + sorted((REPO / "benchmarks").glob("*.py"))
    found = {
        name: hits
        for p in modules
        if (name := str(p.relative_to(REPO))) not in ALLOWED
        and (hits := _calls_outside_the_opener(p))
    }
    assert found == {}


def test_the_scan_sees_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text(
        "import httpx\nimport urllib.request\nfrom http.client import HTTPConnection\n"
        "urllib.request.urlopen('http://127.0.0.1/')\n"
    )
    assert _calls_outside_the_opener(sample) == [
        "import httpx",
        "from http.client import HTTPConnection",
        "urllib.request.urlopen (line 4)",
    ]


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every GET and POST with the request's headers, as JSON."""

    def _answer(self) -> None:
        body = json.dumps(dict(self.headers)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    with serving(_Echo) as url:
        yield url


def test_a_proxy_in_the_environment_is_not_used(
    echo_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # the discard port: nothing answers
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert answers(f"{echo_server}/health")
    assert get_json(f"{echo_server}/stats", 2.0) is not None


def test_the_server_client_sends_the_debug_header_on_post_only(echo_server: str) -> None:
    client = ServerClient(echo_server)
    assert client.trim()["X-Sandbox-Debug"] == "1"
    assert "X-Sandbox-Debug" not in (client.objects() or {})
    host = echo_server.removeprefix("http://")
    assert client.trim()["Host"] == host  # a Host naming this machine, as the server wants
