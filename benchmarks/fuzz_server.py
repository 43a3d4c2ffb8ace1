"""Bad input against a real stair-stepper: thousands of malformed, oversized and slow requests.

A fresh server (glibc, sync handler, SLEEP_MS 0, an 8 MiB cap lowered to 1 MiB so over-cap bodies
stay cheap to make) takes `--requests` requests from 8 threads — random bytes, truncated JSON,
nesting to depth 20,000, huge strings, wrong types, invalid UTF-8, wrong or missing content type,
bodies over the cap, and valid ones — while 8 slow senders trickle valid bodies in over 3 s.
Then it idles, asks the allocator to give free memory back (POST /debug/trim), and compares RSS
with the baseline taken after a warm-up of valid requests from as many threads. Further rounds
(`--rounds`) repeat the fuzzing: RSS that keeps rising round after round would be a leak; RSS
that settles is the heap's working size. Prints a table; writes nothing.

    .venv/bin/python benchmarks/fuzz_server.py [--requests 5000] [--allocator glibc]

Targets (issue 7): zero 5xx, zero crashes, memory back to baseline afterwards.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import psutil

from benchmarks.fuzzing import ALLOWED, VALID, fuzz, send
from sandbox.allocators import registry as allocators
from sandbox.config.server_settings import ServerSettings
from sandbox.measure.launch import build_environ, launch
from sandbox.measure.server_client import ServerClient
from sandbox.system.loopback import get_json
from sandbox.units import MIB

CAP = 1 * MIB


def _heap(url: str, moment: str, proc: psutil.Process) -> str:
    """Where the memory is: what the allocator holds and has handed out, Python's live blocks
    and the server's threads (GET /debug/memory)."""
    snap = get_json(f"{url}/debug/memory", 10) or {}
    python = snap.get("python") or {}
    held, in_use = snap.get("held_bytes") or 0, snap.get("in_use_bytes") or 0
    return (
        f"heap {moment}: allocator holds {held / MIB:.1f} MiB, in use {in_use / MIB:.1f} MiB; "
        f"Python blocks {python.get('allocated_blocks')}; threads {proc.num_threads()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--allocator", default="glibc")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--rounds", type=int, default=3, help="fuzzing rounds")
    args = parser.parse_args()
    settings = ServerSettings(handler="sync", sleep_ms=0, max_body_bytes=CAP)
    env = build_environ(settings.to_environ(), allocators.resolve(args.allocator).environ())
    with launch(env) as server:
        proc = psutil.Process(server.pid)
        # Warm-up: the threads, caches and arenas that valid traffic from 8 clients creates.
        warm = [("valid", "application/json", VALID)] * 400
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda j: send(server.host, server.port, j[1], j[2], 10), warm))
        time.sleep(1)
        ServerClient(server.url).trim()
        time.sleep(1)
        baseline = proc.memory_info().rss
        heap = [_heap(server.url, "baseline", proc)]
        rounds = []
        for i in range(args.rounds):
            started = time.monotonic()
            report = fuzz(server.host, server.port, requests=args.requests, cap=CAP, seed=i)
            wall = time.monotonic() - started
            peak = proc.memory_info().rss
            time.sleep(args.idle)
            after_idle = proc.memory_info().rss
            ServerClient(server.url).trim()
            time.sleep(1)
            rounds.append((report, wall, peak, after_idle, proc.memory_info().rss))
            heap.append(_heap(server.url, f"after round {i + 1}, trimmed", proc))
        alive = server.proc.poll() is None and server.health().get("status") == "ok"
    print(f"server: {args.allocator}, sync handler, SLEEP_MS 0, cap {CAP // MIB} MiB; 8 threads")
    print(f"baseline RSS {baseline / MIB:.1f} MiB (after 400 valid requests and a trim)")
    for i, (report, wall, peak, after_idle, after_trim) in enumerate(rounds, 1):
        total = sum(report.statuses.values())
        fives = sum(n for status, n in report.statuses.items() if status >= 500)
        print(f"round {i}: {total} requests in {wall:.1f} s ({total / wall:.0f}/s)")
        print(
            "  statuses     " + ", ".join(f"{c} x{n}" for c, n in sorted(report.statuses.items()))
        )
        print(f"  outside {sorted(ALLOWED)}: {report.unexpected} (5xx: {fives})")
        print(
            f"  slow senders {report.slow_senders}, slowest answered after "
            f"{report.slow_seconds:.1f} s; {report.served_during_slow} valid requests served "
            "meanwhile"
        )
        print(
            f"  RSS MiB      after fuzzing {peak / MIB:.1f}, after {args.idle:g} s idle "
            f"{after_idle / MIB:.1f}, after trim {after_trim / MIB:.1f} "
            f"({after_trim / baseline:.0%} of baseline)"
        )
    kinds = rounds[0][0].kinds
    print("kinds (round 1): " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    print(f"server alive at the end: {alive}")
    for line in heap:
        print(line)


if __name__ == "__main__":
    main()
