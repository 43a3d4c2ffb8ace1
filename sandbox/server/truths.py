"""Known truths on demand: what the stair-stepper keeps from each request when asked to, so the
verdict can be checked against a cause that is known.

- a leak: LEAK_BYTES a request, kept for good, as small objects or as large buffers;
- a bounded cache: the last CACHE_DOCS parsed request bodies, the oldest evicted;
- pinning: 4 small objects a request, allocated among its garbage, the last PIN_OBJECTS kept,
  the classic fragmentation amplifier (a few live objects keep whole pages, pools or arenas).

All off by default; `create_app` then makes no Keeper and the handler runs as it always did.
The sync handler calls `process` from its worker threads: what is kept changes under one lock
(the objects are made before it is taken); the cache and the pins are deques with a maxlen, which
evict their oldest on append.
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from sandbox.config.server_settings import ServerSettings
from sandbox.server import workloads

PINS_PER_REQUEST = 4
"""Small objects pinned per request: two after the parse, two after the clone."""


@dataclass(frozen=True)
class Kept:
    """What a Keeper holds now."""

    leaked_objects: int
    leaked_bytes: int
    """sys.getsizeof summed over the leak's objects."""
    cached_docs: int
    pinned_objects: int
    pinned_bytes: int

    def to_dict(self) -> dict[str, int]:
        return {
            "leaked_objects": self.leaked_objects,
            "leaked_bytes": self.leaked_bytes,
            "cached_docs": self.cached_docs,
            "pinned_objects": self.pinned_objects,
            "pinned_bytes": self.pinned_bytes,
        }


class Keeper:
    """The truths `settings` asks for, kept for as long as the app lives (the server's life)."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._leaked: list[bytes] = []
        self._leaked_bytes = 0
        self._cache: deque[dict[str, Any]] = deque(maxlen=settings.cache_docs)
        self._pins: deque[bytes] = deque(maxlen=settings.pin_objects)
        self._serial = itertools.count()

    def process(self, body: bytes) -> workloads.Widget:
        """workloads.process, pinning among its garbage, then leaking and caching."""
        between = self._pin if self.settings.pin_objects else None
        widget = workloads.process(body, between)
        if self.settings.leak_bytes:
            chunks = workloads.leak_chunks(self.settings.leak_bytes, self.settings.leak_kind)
            size = sum(sys.getsizeof(c) for c in chunks)
            with self._lock:
                self._leaked.extend(chunks)
                self._leaked_bytes += size
        if self.settings.cache_docs:
            with self._lock:
                self._cache.append(widget.document)
        return widget

    def _pin(self) -> None:
        made = workloads.pins(next(self._serial), PINS_PER_REQUEST // 2)
        with self._lock:
            self._pins.extend(made)

    def kept(self) -> Kept:
        with self._lock:
            leaked_objects, leaked_bytes = len(self._leaked), self._leaked_bytes
            cached_docs, pins = len(self._cache), list(self._pins)
        return Kept(
            leaked_objects=leaked_objects,
            leaked_bytes=leaked_bytes,
            cached_docs=cached_docs,
            pinned_objects=len(pins),
            pinned_bytes=sum(sys.getsizeof(p) for p in pins),
        )
