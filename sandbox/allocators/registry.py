"""Named allocators: the library to LD_PRELOAD, the variables to set, and proof it loaded."""

from __future__ import annotations

import difflib
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from sandbox.allocators import maps as procmaps
from sandbox.errors import AllocatorError

# Where Debian/Ubuntu and other distributions put shared libraries, after the loader's cache.
KNOWN_LIBRARY_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
)


@dataclass(frozen=True)
class Allocator:
    """How to run the server under one allocator."""

    name: str
    """Registry name (`jemalloc`, `glibc-arena2`, or one from benchmark.yml)."""
    library: str | None
    """Soname (looked up by the loader's cache) or absolute path; None for glibc's malloc."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Environment variables, set before the server starts."""
    package: str | None = None
    """Debian package that ships the library."""
    description: str = ""


BUILTIN: dict[str, Allocator] = {
    a.name: a
    for a in (
        Allocator("glibc", None, {}, "libc6", "glibc malloc (ptmalloc2), the default"),
        Allocator(
            "glibc-arena2",
            None,
            {"MALLOC_ARENA_MAX": "2"},
            "libc6",
            "glibc malloc limited to 2 arenas",
        ),
        Allocator("jemalloc", "libjemalloc.so.2", {}, "libjemalloc2", "jemalloc 5"),
        Allocator(
            "jemalloc-bg",
            "libjemalloc.so.2",
            {"MALLOC_CONF": "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"},
            "libjemalloc2",
            "jemalloc with background purging threads and fast decay",
        ),
        Allocator("mimalloc", "libmimalloc.so.2", {}, "libmimalloc2.0", "Microsoft mimalloc 2"),
        Allocator(
            "tcmalloc",
            "libtcmalloc_minimal.so.4",
            {},
            "libtcmalloc-minimal4",
            "gperftools tcmalloc (minimal)",
        ),
    )
}


@dataclass(frozen=True)
class ResolvedAllocator:
    """An allocator whose library file was found on this machine."""

    allocator: Allocator
    path: str | None
    """Absolute path of the library to preload; None for glibc."""

    @property
    def name(self) -> str:
        return self.allocator.name

    def environ(self) -> dict[str, str]:
        """The variables to add to the server's environment."""
        env = dict(self.allocator.env)
        if self.path:
            env["LD_PRELOAD"] = self.path
        return env


def registry(custom: Mapping[str, Allocator] | None = None) -> dict[str, Allocator]:
    """Built-in allocators, overridden or extended by benchmark.yml's `allocators:`."""
    return {**BUILTIN, **(custom or {})}


@lru_cache(maxsize=1)
def _ldconfig_cache() -> dict[str, str]:
    try:
        out = subprocess.run(
            ["ldconfig", "-p"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    found: dict[str, str] = {}
    for line in out.splitlines()[1:]:
        name, sep, path = line.strip().partition(" => ")
        if sep and ("x86-64" in name or "AArch64" in name or "(libc6)" in name):
            found.setdefault(name.split(" (")[0], path.strip())
    return found


def find_library(library: str) -> str | None:
    """Absolute path of a soname or path, through the loader's cache and known folders."""
    if os.sep in library:
        return library if Path(library).is_file() else None
    cached = _ldconfig_cache().get(library)
    if cached and Path(cached).is_file():
        # /lib is often a link to /usr/lib: name the folder as the memory map will.
        return os.path.join(os.path.realpath(os.path.dirname(cached)), library)
    for folder in KNOWN_LIBRARY_DIRS:
        candidate = Path(folder) / library
        if candidate.is_file():
            return str(candidate)
    return None


def missing_message(allocator: Allocator) -> str:
    lib = allocator.library or ""
    if os.sep in lib:
        fix = f"fix allocators.{allocator.name}.library in benchmark.yml"
        if allocator.package:
            fix = f"install it with 'apt-get install {allocator.package}' or {fix}"
        return f"{allocator.name}: library {lib} not found; {fix}"
    how = f"'apt-get install {allocator.package}'" if allocator.package else "your package manager"
    return (
        f"{allocator.name}: {lib} not found; install it with {how} "
        f"or set allocators.{allocator.name}.library in benchmark.yml"
    )


def resolve(name: str, custom: Mapping[str, Allocator] | None = None) -> ResolvedAllocator:
    """Find the library for `name`, or raise AllocatorError naming the package to install."""
    known = registry(custom)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise AllocatorError(
            f"unknown allocator '{name}'; {hint}choose one of: {', '.join(sorted(known))} "
            "(or define it under allocators: in benchmark.yml)"
        )
    allocator = known[name]
    if allocator.library is None:
        return ResolvedAllocator(allocator, None)
    path = find_library(allocator.library)
    if path is None:
        raise AllocatorError(missing_message(allocator))
    return ResolvedAllocator(allocator, path)


def verify_loaded(resolved: ResolvedAllocator, pid: int) -> list[str]:
    """Check /proc/PID/maps; return the allocator libraries mapped, or raise AllocatorError."""
    try:
        every = procmaps.mapped_paths(pid)
    except OSError as exc:
        raise AllocatorError(
            f"cannot read /proc/{pid}/maps to verify the allocator: {exc}"
        ) from None
    mapped = procmaps.allocator_libraries(every)
    if resolved.path is None:
        if mapped:
            raise AllocatorError(
                f"{resolved.name}: expected glibc malloc but the server has {mapped[0]} mapped; "
                "unset LD_PRELOAD in the environment that starts the sandbox"
            )
        return mapped
    want = os.path.realpath(resolved.path)
    hits = [p for p in every if os.path.realpath(p) == want]
    if not hits:
        raise AllocatorError(
            f"{resolved.name}: {resolved.path} is not mapped in the server (pid {pid}); "
            "LD_PRELOAD did not take effect, so the run would measure glibc. "
            "Check that the library matches this machine's architecture"
        )
    return mapped or hits


def verify_malloc_owner(resolved: ResolvedAllocator, owner: str | None) -> None:
    """Check that the library serving `malloc` in the server (dladdr, from /health) is ours.

    Mapped is not enough: a preloaded library that does not define malloc is mapped too.
    """
    if owner is None:
        return  # the server cannot tell (not ours, or no dladdr): the map check stands alone
    if resolved.path is None:
        if "libc.so" not in os.path.basename(owner):
            raise AllocatorError(
                f"{resolved.name}: expected glibc's malloc but the server's malloc comes from "
                f"{owner}; unset LD_PRELOAD in the environment that starts the sandbox"
            )
        return
    if os.path.realpath(owner) != os.path.realpath(resolved.path):
        raise AllocatorError(
            f"{resolved.name}: {resolved.path} is loaded but the server's malloc comes from "
            f"{owner}; that library does not replace malloc, so the run would measure "
            f"{os.path.basename(owner)}"
        )


def package_version(package: str | None) -> str | None:
    """The installed Debian package version, or None."""
    if not package:
        return None
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@dataclass(frozen=True)
class DoctorRow:
    """One allocator as `sandbox doctor` lists it: is its library on this machine?"""

    allocator: Allocator
    found: bool
    """The library is on this machine (always, for glibc's malloc)."""
    path: str | None
    """The library found, or the one looked for; None for glibc's malloc."""
    version: str | None
    """The installed version of the allocator's Debian package, if known."""

    def cells(self) -> tuple[str, str, str, str, str]:
        """Name, found or MISSING, library, package and version, environment."""
        a = self.allocator
        return (
            a.name,
            "found" if self.found else "MISSING",
            self.path or "(built into libc)",
            f"{a.package or '-'} {self.version or '-'}",
            " ".join(f"{k}={v}" for k, v in a.env.items()),
        )


def doctor_rows(custom: Mapping[str, Allocator] | None = None) -> list[DoctorRow]:
    """Every allocator of the registry, with where its library is (or that it is missing)."""
    rows = []
    for allocator in registry(custom).values():
        found = None if allocator.library is None else find_library(allocator.library)
        rows.append(
            DoctorRow(
                allocator,
                found=allocator.library is None or found is not None,
                path=found or allocator.library,
                version=package_version(allocator.package),
            )
        )
    return rows


def missing_packages(rows: list[DoctorRow]) -> list[str]:
    """The Debian packages that would install the missing libraries, sorted."""
    return sorted({r.allocator.package for r in rows if not r.found and r.allocator.package})
