"""What POST /widgets does with a body: allocate, needlessly, like the Rust stair-stepper.

Parse, deep-copy the whole document, re-serialise the copy's payload. The result keeps every
intermediate alive so the caller can hold them across its simulated downstream latency.

Also the objects the known truths keep (truths.py): a leak's chunks and the small objects that
pin pages among a request's garbage. Sizes are as `sys.getsizeof` counts them (header included).
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SMALL_CHUNK_BYTES = 256
"""A small leak's objects: well under pymalloc's 512-byte limit."""
LARGE_CHUNK_BYTES = 16 * 1024
"""A large leak's buffers: over pymalloc's limit, so malloc's; far under glibc's mmap threshold
(128 KiB at least), so from its heap, not a mapping of their own."""
_HEADER_BYTES = sys.getsizeof(b"")
_SMALLEST = {"small": _HEADER_BYTES + 8, "large": 513}
"""The smallest object of each kind: a few bytes of payload (`b"x" * 1` would be `b"x"` itself,
not a new object); just over pymalloc's limit."""
PIN_BYTES = (112, 200, 296, 392)
"""The sizes of the small objects one request pins, in four of pymalloc's size classes."""


class BadRequest(ValueError):
    """The client's body is unusable; the message is safe to send back."""


@dataclass(frozen=True)
class Widget:
    """Everything one request allocated; keep it referenced to keep the memory in use."""

    body: bytes
    document: dict[str, Any]
    clone: dict[str, Any]
    serialised: bytes

    @property
    def size(self) -> int:
        """Bytes of the re-serialised payload."""
        return len(self.serialised)


def parse(body: bytes) -> dict[str, Any]:
    """The JSON object in `body`, which must hold an object under `payload`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not valid UTF-8 (byte {exc.start})") from None
    try:
        document = json.loads(text)
    except RecursionError:
        raise BadRequest("body is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    except ValueError as exc:  # e.g. an integer over sys.get_int_max_str_digits()
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest(f"body must be a JSON object, not {type(document).__name__}")
    if not isinstance(document.get("payload"), dict):
        raise BadRequest('body must have an object under "payload"')
    return document


def process(body: bytes, between: Callable[[], object] | None = None) -> Widget:
    """Parse `body`, clone the document, serialise the clone's payload; keep it all.

    `between` (pinning) is called after the parse and after the clone: what it allocates lands
    among the request's garbage."""
    document = parse(body)
    if between is not None:
        between()
    try:
        clone = copy.deepcopy(document)
        if between is not None:
            between()
        serialised = json.dumps(clone["payload"]).encode()
    except RecursionError:
        raise BadRequest("body is nested too deeply") from None
    return Widget(body, document, clone, serialised)


def leak_chunks(total_bytes: int, kind: str) -> list[bytes]:
    """New objects of `total_bytes` in all (sys.getsizeof): SMALL_CHUNK_BYTES or
    LARGE_CHUNK_BYTES each, a short remainder folded into the last; at least one object.

    Each is written through (`b"\xa5" * n`, a memset), so its pages are resident: a calloc'd
    buffer on fresh pages would stay untouched and out of RSS."""
    chunk = SMALL_CHUNK_BYTES if kind == "small" else LARGE_CHUNK_BYTES
    smallest = _SMALLEST[kind]
    sizes = [chunk] * (total_bytes // chunk)
    remainder = total_bytes - chunk * len(sizes)
    if remainder >= smallest or not sizes:
        sizes.append(max(remainder, smallest))
    else:
        sizes[-1] += remainder  # still under 512 (small) or far under the mmap threshold
    return [b"\xa5" * (size - _HEADER_BYTES) for size in sizes]


def pins(serial: int, count: int) -> list[bytes]:
    """`count` new small objects, sized in turn from PIN_BYTES starting at `serial`."""
    return [
        b"\x5a" * (PIN_BYTES[(serial + i) % len(PIN_BYTES)] - _HEADER_BYTES) for i in range(count)
    ]
