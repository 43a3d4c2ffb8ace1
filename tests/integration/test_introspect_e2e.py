"""/debug/memory, /debug/hold and /debug/trim in a real server under each preloaded allocator."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.config.server_settings import DEBUG_HEADER
from sandbox.measure.launch import ServerProcess
from sandbox.units import MIB
from tests.integration.conftest import stair_stepper

pytestmark = pytest.mark.e2e

HOLD_MIB = 64
RELEASE_CALLS = {
    "glibc": "malloc_trim(0)",
    "jemalloc": 'mallctl("arena.4096.purge")',
    "tcmalloc": "MallocExtension_ReleaseFreeMemory()",
    "mimalloc": "mi_collect(true)",
}


def call(server: ServerProcess, method: str, path: str) -> dict[str, Any]:
    headers = {DEBUG_HEADER: "1"} if method == "POST" else {}
    request = urllib.request.Request(f"{server.url}{path}", method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        data: dict[str, Any] = json.load(response)
        return data


@pytest.fixture(params=list(RELEASE_CALLS))
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with stair_stepper(request.param) as live:
        yield live


def mib(value: int | None) -> str:
    return "null" if value is None else f"{value / MIB:.1f}"


def test_counters_follow_held_memory_and_trim(server: ServerProcess) -> None:
    health = server.health()
    start = call(server, "GET", "/debug/memory")
    name = start["allocator"]
    assert name in RELEASE_CALLS
    if name == "glibc":
        assert (health["allocator"], start["library"]) == ("glibc", None)
    else:
        assert name in health["allocator"]
        libraries = [os.path.realpath(p) for p in health["allocator_libraries"]]
        assert os.path.realpath(start["library"]) in libraries
    assert start["held_bytes"] > 0
    # Timed, not judged here: what a reading costs is measured by benchmarks/agent_cost.py (a
    # loaded 2-core CI machine once took 5.8 ms); this only catches a reading that blocks.
    assert 0 <= start["took_ms"] < 500

    assert call(server, "POST", f"/debug/hold?mib={HOLD_MIB}")["held_mib"] == HOLD_MIB
    held = call(server, "GET", "/debug/memory")
    assert held["rss_bytes"] - start["rss_bytes"] >= 0.9 * HOLD_MIB * MIB
    if name == "mimalloc":
        assert start["in_use_bytes"] is None and held["in_use_bytes"] is None
        rise = held["held_bytes"] - start["held_bytes"]
        assert HOLD_MIB * MIB * 0.9 <= rise <= HOLD_MIB * MIB * 1.6  # whole segments
    else:
        rise = held["in_use_bytes"] - start["in_use_bytes"]
        assert rise == pytest.approx(HOLD_MIB * MIB, rel=0.1)
        assert held["held_bytes"] - start["held_bytes"] >= 0.9 * HOLD_MIB * MIB

    assert call(server, "POST", "/debug/release") == {"released_mib": HOLD_MIB, "held_mib": 0}
    trim = call(server, "POST", "/debug/trim")
    assert trim["called"] == RELEASE_CALLS[name]
    before, after = trim["before"], trim["after"]
    assert trim["released"]["rss_bytes"] == before["rss_bytes"] - after["rss_bytes"]
    if name != "glibc":  # back to start; mimalloc may keep one whole 32 MiB segment committed
        floor = max(start["held_bytes"], 32 * MIB) if name == "mimalloc" else start["held_bytes"]
        assert after["held_bytes"] - floor < 0.1 * HOLD_MIB * MIB
    # glibc: once its dynamic mmap threshold has risen, the 1 MiB blocks come from the heap, and
    # mallinfo2 keeps counting the pages malloc_trim returned as free chunks, so `held` may stay
    # up while RSS goes down: the RSS check below is the one that holds for every allocator.
    # mimalloc keeps its first segment committed, and the pages the hold touched there stay
    # resident; the others give all 64 MiB back.
    returned = 0.5 if name == "mimalloc" else 0.9
    assert held["rss_bytes"] - after["rss_bytes"] >= returned * HOLD_MIB * MIB

    print(
        f"\n{name}: in_use {mib(start['in_use_bytes'])} -> {mib(held['in_use_bytes'])} MiB, "
        f"held {mib(start['held_bytes'])} -> {mib(held['held_bytes'])} MiB, "
        f"rss {mib(start['rss_bytes'])} -> {mib(held['rss_bytes'])} MiB; after release: "
        f"held {mib(before['held_bytes'])} rss {mib(before['rss_bytes'])} MiB; "
        f"{trim['called']} released held {mib(trim['released']['held_bytes'])} "
        f"rss {mib(trim['released']['rss_bytes'])} MiB in {trim['took_ms']} ms; "
        f"snapshot {start['took_ms']} ms"
    )
