"""What the loaded malloc says about itself, read from inside the server through ctypes.

RSS alone cannot tell memory held by live objects from memory lost to the allocator. Every
allocator is reduced to two numbers, so `held_bytes - in_use_bytes` reads the same everywhere:
free memory the allocator keeps (fragmentation, caches, free pages not returned to the OS).

- in_use_bytes: bytes the application has allocated and not yet freed, as the allocator counts
  them (rounded up to its size classes); None when the allocator keeps no such counter.
- held_bytes: bytes the allocator has taken from the OS and not given back.

Per allocator (`raw` keeps the native counters under their native names):

- glibc (`mallinfo2()`, summed over every arena since glibc 2.33): in_use = uordblks + hblkhd,
  held = arena + hblkhd, so held - in_use = fordblks. Free chunks that malloc_trim has already
  returned with MADV_DONTNEED stay in the bins and are still counted: after a trim RSS drops
  while held does not. Chunks parked in per-thread tcaches count as in use.
- jemalloc (`mallctl`, after an `epoch` refresh): in_use = stats.allocated, held =
  stats.resident (pages of data and metadata that are resident: what jemalloc adds to RSS).
  stats.active - stats.allocated is fragmentation inside slabs; stats.resident - stats.active is
  dirty pages not yet purged plus metadata. stats.mapped and stats.retained are virtual.
- tcmalloc (`MallocExtension_GetNumericProperty`): in_use = generic.current_allocated_bytes,
  held = generic.heap_size - tcmalloc.pageheap_unmapped_bytes (the page heap still backed by
  memory: in-use spans, free spans and the central, transfer and thread caches).
- mimalloc (`mi_process_info`): release builds count no live bytes, so in_use is None; held =
  current_commit, mimalloc's committed memory. Committed is not resident: mimalloc commits a
  whole segment up front (32 MiB at start-up, little of it touched), and pages it has touched
  stay resident while they stay committed. Its current_rss is this same number on Linux.

CPython takes small objects (<= 512 bytes) from its own arenas, which it maps with mmap; the
allocator never sees them, so they are in RSS but in none of these numbers (see
`python_stats()["allocated_blocks"]`). PYTHONMALLOC=malloc sends them through the allocator.

`release_free_memory()` reaches: glibc malloc_trim(0), every arena (it madvises whole free
pages, and trims tops); jemalloc arena.<all>.purge, the dirty and muzzy pages of every arena;
tcmalloc ReleaseFreeMemory, the page heap's free spans but not the thread caches; mimalloc
mi_collect(true), only the calling thread's heap (the event loop's), not the workers'.

Every reader is cheap (well under a millisecond) and thread-safe: the allocators take their own
locks, and ctypes releases the GIL during the calls. glibc's mallinfo2 walks every free chunk
of each arena under that arena's lock, so its cost grows with fragmentation (0.15 ms for 20,000
free chunks here).
"""

from __future__ import annotations

import ctypes
import functools
import os

from . import maps

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing into the host
if TYPE_CHECKING:
    from typing import Any

# jemalloc 5: MALLCTL_ARENAS_ALL, the pseudo-arena index meaning "every arena".
JEMALLOC_ARENAS_ALL = 4096
JEMALLOC_STATS = (
    "stats.allocated",
    "stats.active",
    "stats.resident",
    "stats.mapped",
    "stats.metadata",
    "stats.retained",
)

TCMALLOC_PROPERTIES = (
    "generic.current_allocated_bytes",
    "generic.heap_size",
    "tcmalloc.pageheap_free_bytes",
    "tcmalloc.pageheap_unmapped_bytes",
    "tcmalloc.central_cache_free_bytes",
    "tcmalloc.transfer_cache_free_bytes",
    "tcmalloc.thread_cache_free_bytes",
)

MIMALLOC_FIELDS = (
    "elapsed_msecs",
    "user_msecs",
    "system_msecs",
    "current_rss",
    "peak_rss",
    "current_commit",
    "peak_commit",
    "page_faults",
)


MALLINFO2_FIELDS = (
    "arena",  # non-mmapped space: main arena (sbrk) + the other arenas' heaps
    "ordblks",  # free chunks
    "smblks",  # free fastbin chunks
    "hblks",  # mmapped chunks
    "hblkhd",  # bytes in mmapped chunks
    "usmblks",  # always 0
    "fsmblks",  # bytes in free fastbin chunks
    "uordblks",  # bytes in use (non-mmapped)
    "fordblks",  # bytes free (non-mmapped)
    "keepcost",  # releasable top of the main arena
)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in MALLINFO2_FIELDS]


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


class AllocatorReading:
    """The allocator's own counters at one moment, normalised (see the module docstring).

    A plain class, not a dataclass: `dataclasses` imports `inspect`, about 1 MiB in a host
    process that has not loaded it. Treat it as frozen.
    """

    __slots__ = ("allocator", "held_bytes", "in_use_bytes", "library", "note", "raw")

    def __init__(
        self,
        allocator: str,
        library: str | None,
        in_use_bytes: int | None,
        held_bytes: int | None,
        raw: dict[str, int] | None = None,
        note: str | None = None,
    ) -> None:
        self.allocator = allocator
        """glibc, jemalloc, tcmalloc, mimalloc, or the library's file name when unknown."""
        self.library = library
        """Path of the library that provides malloc; None for glibc's own."""
        self.in_use_bytes = in_use_bytes
        """Allocated by the application and not freed; None when the allocator does not count
        it."""
        self.held_bytes = held_bytes
        """Taken from the OS and not returned; None when unavailable."""
        self.raw: dict[str, int] = {} if raw is None else raw
        """The native counters, by their native names."""
        self.note = note
        """What limits these numbers, or why they are missing."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "allocator": self.allocator,
            "library": self.library,
            "in_use_bytes": self.in_use_bytes,
            "held_bytes": self.held_bytes,
            "raw": dict(self.raw),
            "note": self.note,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AllocatorReading) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable dict inside, like the dataclass

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in self.to_dict().items())
        return f"AllocatorReading({fields})"


class Release:
    """What `release_free_memory` called and what it returned (None for void functions)."""

    __slots__ = ("called", "result")

    def __init__(self, called: str, result: int | None) -> None:
        self.called = called
        self.result = result

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Release) and (self.called, self.result) == (
            other.called,
            other.result,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Release(called={self.called!r}, result={self.result!r})"


class Backend:
    """One allocator's readers; subclasses bind the native functions in __init__."""

    name = "unknown"
    note: str | None = None

    def __init__(self, library: str | None) -> None:
        self.library = library

    def read(self) -> dict[str, int]:
        """The native counters; empty when they cannot be read."""
        return {}

    def normalise(self, raw: dict[str, int]) -> tuple[int | None, int | None]:
        """(in_use_bytes, held_bytes) from `raw`."""
        return None, None

    def release(self) -> Release | None:
        """Ask the allocator to return free memory to the OS; None if it cannot."""
        return None

    def snapshot(self) -> AllocatorReading:
        raw = self.read()
        in_use, held = self.normalise(raw)
        return AllocatorReading(self.name, self.library, in_use, held, raw, self.note)


def _noload(path: str) -> ctypes.CDLL:
    """The already-loaded library at `path` (never loads a second copy)."""
    return ctypes.CDLL(path, mode=os.RTLD_NOLOAD)


class Glibc(Backend):
    name = "glibc"
    note = (
        "free chunks whose pages malloc_trim returned still count as held; "
        "per-thread tcache chunks count as in use"
    )

    def __init__(self, library: str | None) -> None:
        super().__init__(library)
        libc = _noload("libc.so.6")
        self._mallinfo2 = libc.mallinfo2
        self._mallinfo2.argtypes = []
        self._mallinfo2.restype = _Mallinfo2
        self._trim = libc.malloc_trim
        self._trim.argtypes = [ctypes.c_size_t]
        self._trim.restype = ctypes.c_int

    def read(self) -> dict[str, int]:
        info = self._mallinfo2()
        return {name: int(getattr(info, name)) for name in MALLINFO2_FIELDS}

    def normalise(self, raw: dict[str, int]) -> tuple[int | None, int | None]:
        return normalise_glibc(raw)

    def release(self) -> Release:
        return Release("malloc_trim(0)", int(self._trim(0)))


class Jemalloc(Backend):
    name = "jemalloc"

    def __init__(self, library: str | None, lib: Any = None) -> None:
        super().__init__(library)
        if lib is None:
            lib = _noload(library) if library else ctypes.CDLL(None)
        self._mallctl = lib.mallctl
        self._mallctl.argtypes = [
            ctypes.c_char_p,
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.c_void_p,
            ctypes.c_size_t,
        ]
        self._mallctl.restype = ctypes.c_int
        stats = ctypes.c_bool(False)
        size = ctypes.c_size_t(ctypes.sizeof(stats))
        if self._mallctl(b"config.stats", ctypes.byref(stats), ctypes.byref(size), None, 0) != 0:
            stats.value = False
        self.stats = bool(stats.value)
        if not self.stats:
            self.note = "this jemalloc was built without --enable-stats: it keeps no counters"

    def _size(self, name: str) -> int | None:
        value = ctypes.c_size_t(0)
        size = ctypes.c_size_t(ctypes.sizeof(value))
        rc = self._mallctl(name.encode(), ctypes.byref(value), ctypes.byref(size), None, 0)
        return int(value.value) if rc == 0 else None

    def read(self) -> dict[str, int]:
        if not self.stats:
            return {}
        epoch = ctypes.c_uint64(1)
        self._mallctl(b"epoch", None, None, ctypes.byref(epoch), ctypes.sizeof(epoch))
        raw = {name: self._size(name) for name in JEMALLOC_STATS}
        return {name: value for name, value in raw.items() if value is not None}

    def normalise(self, raw: dict[str, int]) -> tuple[int | None, int | None]:
        return normalise_jemalloc(raw)

    def release(self) -> Release:
        name = f"arena.{JEMALLOC_ARENAS_ALL}.purge"
        return Release(f'mallctl("{name}")', int(self._mallctl(name.encode(), None, None, None, 0)))


class Tcmalloc(Backend):
    name = "tcmalloc"
    note = "held includes the thread caches' free bytes, which ReleaseFreeMemory does not return"

    def __init__(self, library: str | None) -> None:
        super().__init__(library)
        lib = _noload(library) if library else ctypes.CDLL(None)
        self._get = lib.MallocExtension_GetNumericProperty
        self._get.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t)]
        self._get.restype = ctypes.c_int
        self._release = lib.MallocExtension_ReleaseFreeMemory
        self._release.argtypes = []
        self._release.restype = None

    def read(self) -> dict[str, int]:
        raw: dict[str, int] = {}
        for name in TCMALLOC_PROPERTIES:
            value = ctypes.c_size_t(0)
            if self._get(name.encode(), ctypes.byref(value)):
                raw[name] = int(value.value)
        return raw

    def normalise(self, raw: dict[str, int]) -> tuple[int | None, int | None]:
        return normalise_tcmalloc(raw)

    def release(self) -> Release:
        self._release()
        return Release("MallocExtension_ReleaseFreeMemory()", None)


class Mimalloc(Backend):
    name = "mimalloc"
    note = (
        "mimalloc release builds count no in-use bytes; held is committed memory, which is "
        "not all resident; mi_collect reaches only the calling thread's heap"
    )

    def __init__(self, library: str | None) -> None:
        super().__init__(library)
        lib = _noload(library) if library else ctypes.CDLL(None)
        self._info = lib.mi_process_info
        self._info.argtypes = [ctypes.POINTER(ctypes.c_size_t)] * len(MIMALLOC_FIELDS)
        self._info.restype = None
        self._collect = lib.mi_collect
        self._collect.argtypes = [ctypes.c_bool]
        self._collect.restype = None

    def read(self) -> dict[str, int]:
        values = [ctypes.c_size_t(0) for _ in MIMALLOC_FIELDS]
        self._info(*(ctypes.byref(v) for v in values))
        return {name: int(v.value) for name, v in zip(MIMALLOC_FIELDS, values)}

    def normalise(self, raw: dict[str, int]) -> tuple[int | None, int | None]:
        return normalise_mimalloc(raw)

    def release(self) -> Release:
        # Collects the calling thread's heap and abandoned segments, not other threads' heaps.
        self._collect(True)
        return Release("mi_collect(true)", None)


def _sum(raw: dict[str, int], *names: str) -> int | None:
    if any(name not in raw for name in names):
        return None
    return sum(raw[name] for name in names)


def normalise_glibc(raw: dict[str, int]) -> tuple[int | None, int | None]:
    """in_use = uordblks + hblkhd; held = arena + hblkhd."""
    return _sum(raw, "uordblks", "hblkhd"), _sum(raw, "arena", "hblkhd")


def normalise_jemalloc(raw: dict[str, int]) -> tuple[int | None, int | None]:
    """in_use = stats.allocated; held = stats.resident."""
    return raw.get("stats.allocated"), raw.get("stats.resident")


def normalise_tcmalloc(raw: dict[str, int]) -> tuple[int | None, int | None]:
    """in_use = current_allocated_bytes; held = heap_size - pageheap_unmapped_bytes."""
    heap, unmapped = raw.get("generic.heap_size"), raw.get("tcmalloc.pageheap_unmapped_bytes")
    held = None if heap is None or unmapped is None else heap - unmapped
    return raw.get("generic.current_allocated_bytes"), held


def normalise_mimalloc(raw: dict[str, int]) -> tuple[int | None, int | None]:
    """in_use = None (not counted in release builds); held = current_commit."""
    return None, raw.get("current_commit")


_FAMILIES: dict[str, type[Backend]] = {
    "jemalloc": Jemalloc,
    "tcmalloc": Tcmalloc,
    "mimalloc": Mimalloc,
}


def malloc_owner() -> str | None:
    """Path of the shared object whose `malloc` this process calls, by dladdr; None if unknown."""
    try:
        process = ctypes.CDLL(None)
        malloc = ctypes.cast(process.malloc, ctypes.c_void_p)
        dladdr = process.dladdr
    except (OSError, AttributeError):
        return None
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    dladdr.restype = ctypes.c_int
    info = _DlInfo()
    if not dladdr(malloc, ctypes.byref(info)) or not info.dli_fname:
        return None
    return os.fsdecode(info.dli_fname)


def detect_library() -> str | None:
    """The mapped malloc replacement that serves malloc, or None when glibc's malloc does."""
    return choose_library(maps.allocator_libraries(maps.mapped_paths()), malloc_owner())


def choose_library(mapped: list[str], owner: str | None) -> str | None:
    """Which of the `mapped` malloc replacements serves malloc; None for glibc's own.

    The memory map lists the candidates; when dladdr could say whose `malloc` the process
    resolves to (`owner`), that decides (a replacement can be mapped without interposing malloc).
    """
    if owner is None:
        return mapped[0] if mapped else None
    if os.path.basename(owner).startswith(("libc.so", "libc-")):
        return None
    real = os.path.realpath(owner)
    return next((path for path in mapped if os.path.realpath(path) == real), owner)


def family(library: str | None) -> str:
    """glibc, jemalloc, tcmalloc or mimalloc; the file name for anything else."""
    if library is None:
        return "glibc"
    name = os.path.basename(library)
    return next((known for known in _FAMILIES if known in name), name)


def make_backend(library: str | None) -> Backend:
    """The reader for `library` (None: glibc); a counter-less Backend with a note if none fits."""
    kind = family(library)
    cls = Glibc if library is None else _FAMILIES.get(kind)
    reason = f"no counters known for {kind}"
    if cls is not None:
        try:
            return cls(library)
        except (OSError, AttributeError) as exc:  # library not loaded, or a symbol missing
            reason = f"cannot read {kind}'s counters: {exc}"
    unknown = Backend(library)
    unknown.name, unknown.note = kind, reason
    return unknown


@functools.lru_cache(maxsize=1)
def backend() -> Backend:
    """The backend for this process's allocator (fixed at start, so detected once)."""
    return make_backend(detect_library())


def snapshot() -> AllocatorReading:
    """The loaded allocator's counters now."""
    return backend().snapshot()


def release_free_memory() -> Release | None:
    """Ask the loaded allocator to return its free memory to the OS."""
    return backend().release()
