"""Bad input over real sockets against a real server: no 5xx, no crash, slow senders do not stall
the others, and what the application holds (the allocator's in-use count) is back to its
baseline afterwards; RSS may stay higher by the free memory the allocator keeps."""

from __future__ import annotations

import time

import psutil
import pytest

from benchmarks.fuzzing import fuzz
from sandbox.allocators import registry as allocators
from sandbox.config.server_settings import ServerSettings
from sandbox.measure.launch import build_environ, launch
from sandbox.measure.server_client import ServerClient
from sandbox.system.loopback import get_json
from sandbox.units import MIB

pytestmark = pytest.mark.e2e

CAP = 256 * 1024


def test_fuzzing_a_real_server() -> None:
    settings = ServerSettings(handler="sync", sleep_ms=0, max_body_bytes=CAP)
    env = build_environ(settings.to_environ(), allocators.resolve("glibc").environ())
    with launch(env) as server:
        proc = psutil.Process(server.pid)
        baseline = _in_use_after_trim(server.url)
        after_trim = []
        in_use = []
        for seed in (1, 2):
            report = fuzz(
                server.host,
                server.port,
                requests=300,
                cap=CAP,
                seed=seed,
                slow_senders=4,
                slow_chunk_s=0.1,
                slow_chunks=8,
            )
            assert report.unexpected == 0, report.statuses
            assert report.slow_senders == 4 and report.slow_seconds >= 0.8
            assert report.served_during_slow > 0  # others were answered while they trickled
            assert len(report.kinds) >= 10  # every flavour of bad input was sent
            in_use.append(_in_use_after_trim(server.url))
            after_trim.append(proc.memory_info().rss)
        assert server.proc.poll() is None
        assert server.health()["status"] == "ok"
    # Nothing the bad requests touched stays alive (bodies kept by exception cycles did once).
    assert max(in_use) < baseline + 1 * MIB, [m / MIB for m in (baseline, *in_use)]
    # RSS settles: the second round leaves no more behind than the first.
    assert after_trim[1] < after_trim[0] + 5 * MIB, [m / MIB for m in after_trim]


def _in_use_after_trim(url: str) -> int:
    """The allocator's in-use bytes after asking it to give free memory back."""
    assert ServerClient(url).trim() != {}
    time.sleep(0.5)
    snapshot = get_json(f"{url}/debug/memory", 10) or {}
    return int(snapshot["in_use_bytes"])
