"""Bad input against a real server: random and malformed bodies, wrong content types, over-cap
sizes and slow senders, over real sockets; then, is the server alive and is its memory back?

Used by `benchmarks/fuzz_server.py` (thousands of requests) and by an end-to-end test (a few
hundred). Every answer must be 201, 400, 413 or 415; a slow sender gets its answer once its last
byte arrives, and the other clients are served meanwhile.
"""

from __future__ import annotations

import itertools
import json
import random
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

ALLOWED = frozenset({201, 400, 413, 415})
VALID = json.dumps({"eventType": "fuzz", "payload": {"body": [{"name": "Ada", "n": 1}]}}).encode()


@dataclass
class FuzzReport:
    statuses: Counter[int] = field(default_factory=Counter)
    """HTTP status -> count; 0 for a connection closed without an answer."""
    kinds: Counter[str] = field(default_factory=Counter)
    slow_senders: int = 0
    slow_seconds: float = 0.0
    """The longest a slow sender took to get its answer."""
    served_during_slow: int = 0
    """Normal requests answered while the slow senders were still sending."""

    @property
    def unexpected(self) -> int:
        return sum(n for status, n in self.statuses.items() if status not in ALLOWED)


def bad_requests(rng: random.Random, cap: int) -> Iterator[tuple[str, str | None, bytes]]:
    """(kind, content type, body) forever: every flavour of bad input, and some good."""
    makers: list[tuple[str, Callable[[], tuple[str | None, bytes]]]] = [
        ("random-bytes", lambda: ("application/json", rng.randbytes(rng.randint(0, 4096)))),
        ("truncated", lambda: ("application/json", VALID[: rng.randint(0, len(VALID) - 1)])),
        ("deep-nesting", lambda: ("application/json", _nested(rng.randint(100, 20000)))),
        ("huge-string", lambda: ("application/json", _huge_string(rng.randint(1, cap // 2)))),
        ("wrong-types", lambda: ("application/json", json.dumps(_wrong_type(rng)).encode())),
        ("invalid-utf8", lambda: ("application/json", b'{"payload": "\xff\xfe\xc3("}')),
        ("wrong-content-type", lambda: (rng.choice(["text/plain", "application/xml"]), VALID)),
        ("no-content-type", lambda: (None, VALID)),
        ("over-cap", lambda: ("application/json", b" " * (cap + rng.randint(1, 4096)))),
        ("valid", lambda: ("application/json", VALID)),
    ]
    while True:
        kind, make = rng.choice(makers)
        content_type, body = make()
        yield kind, content_type, body


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _huge_string(size: int) -> bytes:
    return b'{"eventType": "x", "payload": "' + b"a" * size + b'"}'


def _wrong_type(rng: random.Random) -> object:
    return rng.choice(
        [
            [1, 2, 3],
            "payload",
            None,
            {"payload": None},
            {"eventType": 5, "payload": [None, True]},
            {"payload": {"body": "not a list"}},
            1e308,
        ]
    )


def _head(host: str, port: int, content_type: str | None, length: int) -> bytes:
    head = ["POST /widgets HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {length}"]
    if content_type is not None:
        head.append(f"Content-Type: {content_type}")
    head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def _status(sock: socket.socket) -> int:
    """The status code of the answer, or 0 if the server closed without one."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return 0
        data += chunk
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def send(host: str, port: int, content_type: str | None, body: bytes, timeout_s: float) -> int:
    """One request on its own connection. A large body waits a moment after the headers, as a
    client sending `Expect: 100-continue` would: a server that refuses it by its declared
    length (413) answers before the body, and sending it anyway would only meet a reset."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(_head(host, port, content_type, len(body)))
        if len(body) > 64 * 1024 and select.select([sock], [], [], 0.2)[0]:
            return _status(sock)
        sock.sendall(body)
        return _status(sock)


def slow_send(host: str, port: int, body: bytes, chunk_s: float, chunks: int) -> tuple[int, float]:
    """Send a valid request in `chunks` pieces, `chunk_s` apart: (status, seconds)."""
    started = time.monotonic()
    raw = _head(host, port, "application/json", len(body)) + body
    split = [raw[i * len(raw) // chunks : (i + 1) * len(raw) // chunks] for i in range(chunks)]
    with socket.create_connection((host, port), timeout=30 + chunk_s * chunks) as sock:
        for piece in split:
            sock.sendall(piece)
            time.sleep(chunk_s)
        return _status(sock), time.monotonic() - started


def fuzz(
    host: str,
    port: int,
    *,
    requests: int,
    cap: int,
    seed: int = 7,
    workers: int = 8,
    slow_senders: int = 8,
    slow_chunk_s: float = 0.25,
    slow_chunks: int = 12,
) -> FuzzReport:
    """Send `requests` bad (and some good) requests from `workers` threads while `slow_senders`
    trickle valid bodies in; count the answers."""
    rng = random.Random(seed)
    report = FuzzReport()
    lock = threading.Lock()
    jobs = list(itertools.islice(bad_requests(rng, cap), requests))
    sending = [slow_senders]  # slow senders still sending

    def one(job: tuple[str, str | None, bytes]) -> None:
        kind, content_type, body = job
        try:
            status = send(host, port, content_type, body, timeout_s=30)
        except OSError:
            status = 0
        with lock:
            report.statuses[status] += 1
            report.kinds[kind] += 1
            if sending[0] > 0 and status == 201:
                report.served_during_slow += 1

    def slow() -> None:
        status, seconds = slow_send(host, port, VALID, slow_chunk_s, slow_chunks)
        with lock:
            sending[0] -= 1
            report.statuses[status] += 1
            report.kinds["slow-sender"] += 1
            report.slow_senders += 1
            report.slow_seconds = max(report.slow_seconds, seconds)

    with ThreadPoolExecutor(max_workers=slow_senders or 1) as slow_pool:
        slow_futures = [slow_pool.submit(slow) for _ in range(slow_senders)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, jobs))
        for f in slow_futures:
            f.result()
    return report
