"""Which files a process has mapped (/proc/PID/maps), and which of them are malloc replacements.

The agent's own copy, standard library only; `sandbox.allocators.maps` re-exports it for the
harness.
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing into the host
if TYPE_CHECKING:
    from collections.abc import Iterable

# lib*malloc*.so* : libjemalloc.so.2, libmimalloc.so.2, libtcmalloc_minimal.so.4, ...
_ALLOCATOR_NAME = re.compile(r"lib[^/]*malloc[^/]*\.so(\.[0-9.]+)?")

# Libraries named *malloc* that do not replace glibc's malloc: glibc's own debug hooks (malloc
# stays glibc's underneath) and abseil's internal low-level arena.
_NOT_ALLOCATORS = re.compile(r"libc_malloc_debug\.so.*|libabsl_malloc_internal\.so.*")

_DELETED = " (deleted)"


def mapped_paths(pid: int | None = None) -> list[str]:
    """Unique file paths mapped into process `pid` (this process when None), in map order.

    Raises OSError (e.g. FileNotFoundError, PermissionError) if the maps cannot be read.
    """
    maps = "/proc/self/maps" if pid is None else f"/proc/{pid}/maps"
    with open(maps, encoding="utf-8", errors="surrogateescape") as f:
        lines = f.read().splitlines()
    seen: dict[str, None] = {}
    for line in lines:
        # address perms offset dev inode [pathname]; the pathname may contain spaces.
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith("/"):
            continue  # anonymous, [heap], [stack], [vdso], ...
        path = fields[5]
        if path.endswith(_DELETED):
            path = path[: -len(_DELETED)]
        seen.setdefault(path, None)
    return list(seen)


def is_allocator_library(path: str) -> bool:
    """True if the file name looks like a malloc replacement (jemalloc, mimalloc, tcmalloc...)."""
    name = os.path.basename(path)
    return bool(_ALLOCATOR_NAME.fullmatch(name)) and not _NOT_ALLOCATORS.fullmatch(name)


def allocator_libraries(paths: Iterable[str]) -> list[str]:
    """The paths among `paths` that are malloc replacement libraries, in order."""
    return [p for p in paths if is_allocator_library(p)]
