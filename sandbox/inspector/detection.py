"""Which allocator serves `malloc` in another process, from the outside (no attach).

The evidence is /proc/PID/maps (which malloc replacements are mapped) and LD_PRELOAD in
/proc/PID/environ (the environment the process was started with; readable by its owner and
root). A replacement can be mapped without interposing malloc, so the gdb session confirms it:
it asks the target's dynamic linker, dlsym(RTLD_DEFAULT, "malloc"), and names the family of the
file that holds the answer (see `FAMILY_PATTERNS`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from sandbox.allocators import maps as procmaps

KNOWN_FAMILIES = ("glibc", "jemalloc", "tcmalloc", "mimalloc")
"""The allocators whose counters inspect can read inside the target."""

FAMILY_PATTERNS: tuple[tuple[str, str], ...] = (
    ("jemalloc", "jemalloc"),
    ("tcmalloc", "tcmalloc"),
    ("mimalloc", "mimalloc"),
    ("libc.so", "glibc"),
    ("libc-", "glibc"),
)
"""(part of a file name, family): how the gdb session names the owner of `malloc`."""


@dataclass(frozen=True)
class Detection:
    """The allocator a process most likely calls, and why we think so."""

    family: str
    """glibc, jemalloc, tcmalloc, mimalloc, or the library's file name when not one of those."""
    library: str | None
    """The mapped malloc replacement that serves malloc; None for glibc's own."""
    mapped: tuple[str, ...]
    """Every mapped library whose name looks like a malloc replacement."""
    ld_preload: str | None
    """LD_PRELOAD from the process's environment; None when unset or unreadable."""
    environ_readable: bool

    @property
    def known(self) -> bool:
        return self.family in KNOWN_FAMILIES

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "library": self.library,
            "mapped_allocators": list(self.mapped),
            "ld_preload": self.ld_preload,
        }


def family_of(owner: str | None) -> str:
    """The family of the file that provides `malloc`; None means glibc's own."""
    if owner is None:
        return "glibc"
    name = os.path.basename(owner)
    for pattern, name_of_family in FAMILY_PATTERNS:
        if pattern in name:
            return name_of_family
    return name


def read_environ(pid: int) -> dict[str, str] | None:
    """The environment process `pid` started with; None when it is not readable."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except PermissionError:
        return None
    env: dict[str, str] = {}
    for entry in raw.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep:
            env[os.fsdecode(key)] = os.fsdecode(value)
    return env


def choose(mapped: list[str], ld_preload: str | None) -> str | None:
    """The mapped replacement that serves malloc: the first one LD_PRELOAD names, else the first."""
    if not mapped:
        return None
    preloaded = {os.path.realpath(p) for p in (ld_preload or "").replace(":", " ").split() if p}
    preloaded_names = {os.path.basename(p) for p in preloaded}
    for path in mapped:
        if os.path.realpath(path) in preloaded or os.path.basename(path) in preloaded_names:
            return path
    return mapped[0]


def detect(pid: int) -> Detection:
    """Read /proc/PID/maps and /proc/PID/environ.

    Raises OSError (FileNotFoundError, ProcessLookupError, PermissionError) when the maps
    cannot be read.
    """
    mapped = procmaps.allocator_libraries(procmaps.mapped_paths(pid))
    env = read_environ(pid)
    ld_preload = (env.get("LD_PRELOAD") or None) if env is not None else None
    library = choose(mapped, ld_preload)
    return Detection(
        family=family_of(library),
        library=library,
        mapped=tuple(mapped),
        ld_preload=ld_preload,
        environ_readable=env is not None,
    )
