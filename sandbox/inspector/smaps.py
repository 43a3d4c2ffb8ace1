"""Where a process's resident memory is, from /proc/PID/smaps: anonymous or file-backed, and by
kind of mapping (the brk heap, glibc's arena heaps, thread stacks, other anonymous mappings by
size).

Reading smaps does not stop the target; the kernel walks its page tables under the mm's read lock.

How mappings are told apart (64-bit Linux):
- `[heap]`: the brk heap: glibc's main arena (and tcmalloc's sbrk allocator).
- glibc arena heaps: each non-main arena lives in heaps that glibc reserves as HEAP_MAX_SIZE
  (64 MiB) aligned to 64 MiB, the part in use read-write and the rest PROT_NONE, so: an anonymous
  mapping that starts on a 64 MiB boundary and is 64 MiB long, or is followed by a PROT_NONE
  mapping that ends on the next boundary.
- thread stacks: a read-write anonymous mapping just above a PROT_NONE guard of at most 64 KiB
  (glibc's pthread stacks; CPython's threads use them).
- other anonymous mappings, by size: glibc's mmapped chunks (128 KiB and more), jemalloc extents,
  tcmalloc spans, mimalloc segments, CPython's 1 MiB pymalloc arenas. The kernel merges
  neighbours with the same permissions into one mapping, so a count is a count of mappings,
  not of allocator chunks.
- reserved: PROT_NONE anonymous mappings not accounted above (virtual only, nothing resident).
- `[anon:NAME]` mappings (named with prctl PR_SET_VMA_ANON_NAME, e.g. by glibc's
  glibc.mem.decorate_maps tunable) keep their name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.units import KIB, MIB

GLIBC_HEAP_MAX_BYTES = 64 * MIB
"""HEAP_MAX_SIZE on 64-bit: 2 * DEFAULT_MMAP_THRESHOLD_MAX (32 MiB)."""
GUARD_MAX_BYTES = 64 * KIB

ANONYMOUS_BUCKETS: tuple[tuple[int, str], ...] = (
    (1 * MIB, "anonymous < 1 MiB"),
    (8 * MIB, "anonymous 1-8 MiB"),
    (64 * MIB, "anonymous 8-64 MiB"),
    (2**64, "anonymous >= 64 MiB"),
)

HEAP = "[heap]"
STACK = "[stack]"
ARENA_HEAPS = "glibc arena heaps"
THREAD_STACKS = "thread stacks"
RESERVED = "reserved (no access)"
FILE_BACKED = "file-backed"
KERNEL = "kernel ([vdso], [vvar], ...)"

_HEADER = re.compile(
    r"^(?P<start>[0-9a-f]+)-(?P<end>[0-9a-f]+) (?P<perms>\S{4}) (?P<offset>[0-9a-f]+) "
    r"(?P<dev>\S+) (?P<inode>\d+)\s*(?P<path>.*)$"
)
_FIELD = re.compile(r"^(?P<key>\w+):\s+(?P<value>\d+) kB$")


@dataclass(frozen=True)
class Mapping:
    """One line of /proc/PID/maps with the page counts smaps gives for it."""

    start: int
    end: int
    perms: str
    """r, w, x, then p (private) or s (shared); `-` where absent."""
    inode: int
    path: str
    """File path, `[heap]`, `[stack]`, `[anon:NAME]`, ... or "" for an unnamed anonymous one."""
    rss_bytes: int = 0
    anonymous_bytes: int = 0
    """Anonymous pages: all of an anonymous mapping's, a file mapping's private copies."""
    swap_bytes: int = 0
    anon_huge_bytes: int = 0
    """Resident in transparent huge pages."""

    @property
    def size_bytes(self) -> int:
        return self.end - self.start

    @property
    def is_file(self) -> bool:
        return self.path.startswith("/") or (self.inode != 0 and not self.path.startswith("["))

    @property
    def is_anonymous(self) -> bool:
        return not self.path or self.path.startswith(("[anon:", "[anon_shmem:"))

    @property
    def no_access(self) -> bool:
        return self.perms.startswith("---")


@dataclass(frozen=True)
class Region:
    """Mappings of one kind: how many, how large (virtual) and how much of them is resident."""

    name: str
    mappings: int
    size_bytes: int
    rss_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mappings": self.mappings,
            "size_bytes": self.size_bytes,
            "rss_bytes": self.rss_bytes,
        }


@dataclass(frozen=True)
class MemoryMap:
    """A process's resident memory, split by what backs it and by kind of mapping."""

    rss_bytes: int
    anonymous_bytes: int
    """Resident anonymous pages (heap, arenas, stacks, private copies of file pages)."""
    file_bytes: int
    """Resident pages of files (code, data, shared memory): rss_bytes - anonymous_bytes."""
    swap_bytes: int
    anon_huge_bytes: int
    regions: tuple[Region, ...]
    """Non-empty kinds, in a fixed order: heap, arena heaps, stacks, anonymous by size, ..."""

    def region(self, name: str) -> Region | None:
        return next((r for r in self.regions if r.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rss_bytes": self.rss_bytes,
            "anonymous_bytes": self.anonymous_bytes,
            "file_bytes": self.file_bytes,
            "swap_bytes": self.swap_bytes,
            "anon_huge_bytes": self.anon_huge_bytes,
            "regions": [r.to_dict() for r in self.regions],
        }


def parse(text: str) -> list[Mapping]:
    """The mappings of a /proc/PID/smaps text, in address order."""
    mappings: list[Mapping] = []
    header: re.Match[str] | None = None
    fields: dict[str, int] = {}

    def flush() -> None:
        if header is not None:
            mappings.append(_mapping(header, fields))

    for line in text.splitlines():
        match = _HEADER.match(line)
        if match:
            flush()
            header, fields = match, {}
            continue
        field = _FIELD.match(line)
        if field:
            fields[field["key"]] = int(field["value"]) * KIB
    flush()
    return mappings


def _mapping(header: re.Match[str], fields: dict[str, int]) -> Mapping:
    return Mapping(
        start=int(header["start"], 16),
        end=int(header["end"], 16),
        perms=header["perms"],
        inode=int(header["inode"]),
        path=header["path"].strip(),
        rss_bytes=fields.get("Rss", 0),
        anonymous_bytes=fields.get("Anonymous", 0),
        swap_bytes=fields.get("Swap", 0),
        anon_huge_bytes=fields.get("AnonHugePages", 0),
    )


def kinds(mappings: Sequence[Mapping]) -> list[str]:
    """The region name of each mapping (same order); see the module docstring for the rules."""
    names = [""] * len(mappings)
    for i, m in enumerate(mappings):
        if names[i]:
            continue  # already claimed as the PROT_NONE tail of an arena heap
        tail = _arena_heap_tail(mappings, i) if m.is_anonymous else None
        if m.path == HEAP:
            names[i] = HEAP
        elif m.path == STACK:
            names[i] = STACK
        elif m.is_file:
            names[i] = FILE_BACKED
        elif not m.is_anonymous:
            names[i] = KERNEL
        elif tail is not None:
            names[i] = names[tail] = ARENA_HEAPS
        elif m.path.startswith("[anon"):
            names[i] = m.path
        elif m.no_access:
            names[i] = RESERVED
        elif _after_guard(mappings, i):
            names[i] = THREAD_STACKS
        else:
            names[i] = next(name for limit, name in ANONYMOUS_BUCKETS if m.size_bytes < limit)
    return names


def _arena_heap_tail(mappings: Sequence[Mapping], i: int) -> int | None:
    """Index of the last mapping of the glibc heap starting at mappings[i], or None."""
    m = mappings[i]
    if m.start % GLIBC_HEAP_MAX_BYTES or m.no_access:
        return None
    if m.path and "malloc arena" not in m.path:
        return None
    boundary = m.start + GLIBC_HEAP_MAX_BYTES
    if m.end == boundary:
        return i
    if i + 1 < len(mappings):
        tail = mappings[i + 1]
        if tail.start == m.end and tail.end == boundary and tail.no_access and tail.is_anonymous:
            return i + 1
    return None


def _after_guard(mappings: Sequence[Mapping], i: int) -> bool:
    if i == 0 or not mappings[i].perms.startswith("rw"):
        return False
    guard = mappings[i - 1]
    return (
        guard.end == mappings[i].start
        and guard.no_access
        and guard.is_anonymous
        and guard.size_bytes <= GUARD_MAX_BYTES
    )


_ORDER = (
    HEAP,
    ARENA_HEAPS,
    STACK,
    THREAD_STACKS,
    *(name for _, name in ANONYMOUS_BUCKETS),
    RESERVED,
    FILE_BACKED,
    KERNEL,
)


def summarise(mappings: Sequence[Mapping]) -> MemoryMap:
    """Totals and regions for `mappings` (from `parse`)."""
    totals: dict[str, list[int]] = {}
    for m, name in zip(mappings, kinds(mappings), strict=True):
        count, size, rss = totals.setdefault(name, [0, 0, 0])
        totals[name] = [count + 1, size + m.size_bytes, rss + m.rss_bytes]
    named = sorted(name for name in totals if name not in _ORDER)
    regions = tuple(
        Region(name, *totals[name])
        for name in (*_ORDER[:-2], *named, *_ORDER[-2:])
        if name in totals
    )
    rss = _sum(mappings, "rss_bytes")
    anonymous = _sum(mappings, "anonymous_bytes")
    return MemoryMap(
        rss_bytes=rss,
        anonymous_bytes=anonymous,
        file_bytes=rss - anonymous,
        swap_bytes=_sum(mappings, "swap_bytes"),
        anon_huge_bytes=_sum(mappings, "anon_huge_bytes"),
        regions=regions,
    )


def _sum(mappings: Iterable[Mapping], attr: str) -> int:
    return sum(int(getattr(m, attr)) for m in mappings)


def read(pid: int) -> MemoryMap:
    """Parse and summarise /proc/PID/smaps.

    Raises OSError: FileNotFoundError or ProcessLookupError when the process is gone,
    PermissionError when it belongs to another user.
    """
    with open(f"/proc/{pid}/smaps", encoding="utf-8", errors="surrogateescape") as f:
        text = f.read()
    if not text:
        # A process that has exited but not been reaped (a zombie) has no mappings left.
        raise ProcessLookupError(f"process {pid} has no memory mappings (it has exited)")
    return summarise(parse(text))
