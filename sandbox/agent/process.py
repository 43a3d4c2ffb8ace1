"""What the process and the interpreter say about their own memory (no allocator involved)."""

from __future__ import annotations

import gc
import os
import sys

try:  # the C module: `tracemalloc` itself would import pickle and more into the host process
    import _tracemalloc as _tracing
except ImportError:  # pragma: no cover - other interpreters
    import tracemalloc as _tracing  # type: ignore[no-redef]

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing into the host
if TYPE_CHECKING:
    from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """This process's resident set size, from /proc/self/statm."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * _PAGE


def python_stats(count_objects: bool = False) -> dict[str, Any]:
    """The interpreter's view; `count_objects` adds len(gc.get_objects()) (slow on big heaps)."""
    tracing = _tracing.is_tracing()
    traced, peak = _tracing.get_traced_memory() if tracing else (None, None)
    return {
        "allocated_blocks": sys.getallocatedblocks(),
        "gc_counts": list(gc.get_count()),
        "gc_objects": len(gc.get_objects()) if count_objects else None,
        "tracemalloc_bytes": traced,
        "tracemalloc_peak_bytes": peak,
    }
