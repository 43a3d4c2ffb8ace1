"""A standard-library HTTP service that holds memory through malloc on request.

    python hold_service.py --port PORT

POST /hold?mib=N mallocs N MiB as one block and writes every byte of it (so it is resident);
POST /free frees every block; GET /health answers {"pid": ..., "held_mib": ...}. One block of
exactly N MiB counts as N MiB in use under every allocator: glibc serves it by mmap (in hblkhd),
jemalloc from its huge size classes (64 MiB is one), tcmalloc from its page heap. A bytearray
would ask for N MiB plus a header and spill into the next size class (80 MiB in jemalloc).
Python 3.8 and the standard library only, so it runs in any interpreter the tests have.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MIB = 1024 * 1024
_libc = ctypes.CDLL(None)  # the process's malloc: the preloaded allocator's, if any
_malloc = _libc.malloc
_malloc.argtypes = [ctypes.c_size_t]
_malloc.restype = ctypes.c_void_p
_free = _libc.free
_free.argtypes = [ctypes.c_void_p]
_free.restype = None


class Holder:
    """Blocks taken with malloc and written, until freed."""

    def __init__(self) -> None:
        self.blocks: list[tuple[int, int]] = []

    @property
    def mib(self) -> int:
        return sum(size for _, size in self.blocks) // MIB

    def hold(self, mib: int) -> None:
        size = mib * MIB
        address = _malloc(size)
        if not address:
            raise MemoryError(f"malloc({size}) failed")
        ctypes.memset(address, 1, size)
        self.blocks.append((address, size))

    def free(self) -> None:
        for address, _ in self.blocks:
            _free(address)
        self.blocks = []


HOLDER = Holder()


class Handler(BaseHTTPRequestHandler):
    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/health":
            self._reply(200, {"pid": os.getpid(), "held_mib": HOLDER.mib})
        else:
            self._reply(404, {"error": "no such route"})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/hold":
            text = parse_qs(url.query).get("mib", [""])[0]
            if not text.isdigit():
                self._reply(400, {"error": "?mib=N must be a whole number"})
                return
            HOLDER.hold(int(text))
            self._reply(201, {"held_mib": HOLDER.mib})
        elif url.path == "/free":
            HOLDER.free()
            self._reply(200, {"held_mib": HOLDER.mib})
        else:
            self._reply(404, {"error": "no such route"})

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the tests read stderr for the agent's lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    HTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
