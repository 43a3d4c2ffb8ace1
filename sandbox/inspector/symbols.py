"""Which symbol files gdb reads before it attaches, and at which addresses they are loaded.

Reading symbols is most of an attach: gdb reads every shared library's symbol table while the
target is stopped (about 200 ms for a uvicorn process with 46 libraries on a busy 2-core
machine). The gdb session therefore turns that off (`auto-solib-add off`) and loads, before the
attach, only the files whose functions it calls: the C library (and libdl before glibc 2.34),
every mapped malloc replacement and what LD_PRELOAD names, and libpython. Each is loaded at the
address the target mapped it (`add-symbol-file FILE -o BIAS`), found in /proc/PID/maps.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass

from sandbox.allocators import maps as procmaps

_PAGE = os.sysconf("SC_PAGE_SIZE")
_PT_LOAD = 1
_DELETED = " (deleted)"
_WANTED = re.compile(r"libc\.so.*|libc-[0-9.]+\.so|libdl\.so.*|libpython.*\.so.*")


@dataclass(frozen=True)
class SymbolFile:
    path: str
    """As this process can open it: /proc/PID/root/ followed by the path the target mapped."""
    bias: int
    """What to add to the file's own addresses: where the target loaded it."""


def load_addresses(maps_text: str) -> dict[str, int]:
    """Start of the first mapping at file offset 0 of every mapped file (deleted ones left out)."""
    starts: dict[str, int] = {}
    for line in maps_text.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith("/") or fields[5].endswith(_DELETED):
            continue
        if int(fields[2], 16) == 0:
            starts.setdefault(fields[5], int(fields[0].split("-")[0], 16))
    return starts


def first_load_vaddr(path: str) -> int:
    """The page-aligned virtual address of a 64-bit ELF file's first PT_LOAD segment (0 if none)."""
    try:
        with open(path, "rb") as f:
            header = f.read(64)
            if len(header) < 64 or header[:4] != b"\x7fELF" or header[4] != 2:
                return 0
            order = "<" if header[5] == 1 else ">"
            (phoff,) = struct.unpack_from(order + "Q", header, 32)
            entry_size, count = struct.unpack_from(order + "HH", header, 54)
            f.seek(phoff)
            table = f.read(entry_size * count)
    except OSError:
        return 0
    for i in range(count):
        if (i + 1) * entry_size > len(table):
            break
        kind, _flags, _offset, vaddr = struct.unpack_from(order + "IIQQ", table, i * entry_size)
        if kind == _PT_LOAD:
            return int(vaddr) & ~(_PAGE - 1)
    return 0


def preloaded(ld_preload: str | None) -> list[str]:
    return [p for p in (ld_preload or "").replace(":", " ").split() if p]


def choose(starts: dict[str, int], ld_preload: str | None) -> list[str]:
    """The files to load, in the order the dynamic linker searches them: LD_PRELOAD's first."""
    first: list[str] = []
    for entry in preloaded(ld_preload):
        for path in starts:
            same = os.path.basename(path) == os.path.basename(entry) or os.path.realpath(
                path
            ) == os.path.realpath(entry)
            if same and path not in first:
                first.append(path)

    def wanted(path: str) -> bool:
        name = os.path.basename(path)
        return bool(_WANTED.fullmatch(name)) or procmaps.is_allocator_library(path)

    return first + [p for p in starts if p not in first and wanted(p)]


def symbol_files(pid: int, ld_preload: str | None) -> list[SymbolFile]:
    """What the gdb session should load before it attaches to `pid`.

    Raises OSError when /proc/PID/maps cannot be read.
    """
    with open(f"/proc/{pid}/maps", encoding="utf-8", errors="surrogateescape") as f:
        starts = load_addresses(f.read())
    files = []
    for path in choose(starts, ld_preload):
        # Through the target's root: the same file even when it runs in another mount namespace.
        seen = f"/proc/{pid}/root{path}"
        files.append(SymbolFile(seen, starts[path] - first_load_vaddr(seen)))
    return files
