"""Every allocator's native counters reduced to in_use_bytes and held_bytes.

The definitions are those of sandbox.server.introspect (its docstring explains each), so a
process read from outside by `sandbox inspect` and one reading itself give the same numbers;
tests/unit/test_inspect_normalise.py holds the two to each other. The harness does not import
the server package, hence this second home:

- glibc:    in_use = uordblks + hblkhd; held = arena + hblkhd
- jemalloc: in_use = stats.allocated; held = stats.resident
- tcmalloc: in_use = generic.current_allocated_bytes;
            held = generic.heap_size - tcmalloc.pageheap_unmapped_bytes
- mimalloc: in_use = None (release builds do not count it); held = current_commit
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

Normaliser = Callable[[Mapping[str, int]], tuple[int | None, int | None]]


def _sum(raw: Mapping[str, int], *names: str) -> int | None:
    if any(name not in raw for name in names):
        return None
    return sum(raw[name] for name in names)


def glibc(raw: Mapping[str, int]) -> tuple[int | None, int | None]:
    return _sum(raw, "uordblks", "hblkhd"), _sum(raw, "arena", "hblkhd")


def jemalloc(raw: Mapping[str, int]) -> tuple[int | None, int | None]:
    return raw.get("stats.allocated"), raw.get("stats.resident")


def tcmalloc(raw: Mapping[str, int]) -> tuple[int | None, int | None]:
    heap, unmapped = raw.get("generic.heap_size"), raw.get("tcmalloc.pageheap_unmapped_bytes")
    held = None if heap is None or unmapped is None else heap - unmapped
    return raw.get("generic.current_allocated_bytes"), held


def mimalloc(raw: Mapping[str, int]) -> tuple[int | None, int | None]:
    return None, raw.get("current_commit")


NORMALISERS: dict[str, Normaliser] = {
    "glibc": glibc,
    "jemalloc": jemalloc,
    "tcmalloc": tcmalloc,
    "mimalloc": mimalloc,
}

NOTES: dict[str, str] = {
    "glibc": (
        "free chunks whose pages malloc_trim returned still count as held; "
        "per-thread tcache chunks count as in use"
    ),
    "tcmalloc": (
        "held includes the thread caches' free bytes, which ReleaseFreeMemory does not return"
    ),
    "mimalloc": (
        "mimalloc release builds count no in-use bytes; held is committed memory, which is "
        "not all resident; mi_collect reaches only the calling thread's heap"
    ),
}
"""What limits each allocator's numbers (the same words as the in-process snapshot's note)."""
