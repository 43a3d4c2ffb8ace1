"""A known truth seen through the agent, in a real stair-stepper under glibc: a leak of small
objects shows as pymalloc's used bytes growing by the amount leaked; a leak of large buffers
as malloc's in-use bytes, with pymalloc's flat."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest

from sandbox.agent.pymalloc import MIN_EVERY_S
from sandbox.allocators import registry as allocators
from sandbox.config.server_settings import ServerSettings
from sandbox.measure import inject
from sandbox.measure.agent_client import AgentClient, MemorySnapshot
from sandbox.measure.launch import ServerProcess, build_environ, launch
from sandbox.units import MIB
from tests.integration.conftest import post_json

pytestmark = pytest.mark.e2e

LEAK_BYTES = 30 * 1024
REQUESTS = 300
WARMUP = 20
BODY = json.dumps({"eventType": "truth", "payload": {"rows": list(range(20))}}).encode()


def post(server: ServerProcess, count: int) -> None:
    for _ in range(count):
        assert post_json(f"{server.url}/widgets", BODY) == 201


def stats(server: ServerProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server.url}/stats", timeout=10) as response:
        data: dict[str, Any] = json.load(response)
        return data


def fresh_snapshot(client: AgentClient, pid: int) -> MemorySnapshot:
    """A snapshot whose pymalloc reading was taken for it (the agent keeps one MIN_EVERY_S)."""
    time.sleep(MIN_EVERY_S + 0.1)
    snap = client.snapshot(pid)
    assert snap is not None and snap.pymalloc is not None, snap
    assert snap.pymalloc.age_s < 0.05
    return snap


@pytest.mark.parametrize("kind", ["small", "large"])
def test_a_leak_shows_where_it_lives(kind: str) -> None:
    settings = ServerSettings(
        sleep_ms=0,
        threads=4,
        leak_bytes=LEAK_BYTES,
        leak_kind=kind,  # type: ignore[arg-type]
    )
    with inject.agent_folder() as folder:
        base = build_environ(settings.to_environ(), allocators.resolve("glibc").environ())
        with launch(inject.agent_environ(folder, base)) as server:
            client = AgentClient(folder)
            post(server, WARMUP)  # the first requests' one-off allocations
            before = fresh_snapshot(client, server.pid)
            post(server, REQUESTS)
            after = fresh_snapshot(client, server.pid)
            kept = stats(server)["kept"]
    assert before.pymalloc is not None and after.pymalloc is not None
    assert before.in_use_bytes is not None and after.in_use_bytes is not None
    assert kept["leaked_bytes"] == (WARMUP + REQUESTS) * LEAK_BYTES
    leaked = REQUESTS * LEAK_BYTES
    pymalloc_rise = after.pymalloc.used_bytes - before.pymalloc.used_bytes
    malloc_rise = after.in_use_bytes - before.in_use_bytes
    print(
        f"\n{kind}: leaked {leaked / MIB:.1f} MiB; pymalloc used +{pymalloc_rise / MIB:.2f} MiB "
        f"({after.pymalloc.arenas - before.pymalloc.arenas:+d} arenas), malloc in use "
        f"+{malloc_rise / MIB:.2f} MiB; reading {after.pymalloc.cpu_ms:.3f} ms of CPU"
    )
    if kind == "small":
        assert leaked <= pymalloc_rise <= 1.15 * leaked
        assert after.pymalloc.arenas > before.pymalloc.arenas
    else:
        assert abs(pymalloc_rise) < 0.05 * leaked
        assert leaked <= malloc_rise <= 1.15 * leaked
