"""`--host-cores N`: run with the allocator defaults a host of N cores would have.

Two defaults scale with the core count, and both can be set from outside:
  glibc malloc    at most 8 x cores arenas on a 64-bit machine (MALLOC_ARENA_MAX = 8 N)
  jemalloc        4 x CPUs arenas (MALLOC_CONF narenas:4N)
What an allocator's own variables already set is kept (an arm's MALLOC_ARENA_MAX=2 stays 2).
What cannot be emulated: the threads still share this machine's cores (no contention or
parallelism of N cores); mimalloc and tcmalloc keep per-thread heaps and caches whose count does
not follow the core count, so nothing is set for them; jemalloc's background threads (at most
one per CPU) and Python's own os.cpu_count() (asyncio's default executor: min(32, cores + 4)
threads; a gunicorn -w 2N+1 rule) still see this machine's cores.
"""

from __future__ import annotations

from collections.abc import Mapping

GLIBC_ARENAS_PER_CORE = 8
"""glibc's default arena limit per core on a 64-bit machine (NARENAS_FROM_NCORES)."""
JEMALLOC_ARENAS_PER_CPU = 4
"""jemalloc's default narenas per CPU (opt_narenas = ncpus << 2)."""

CANNOT_EMULATE = (
    "--host-cores sets the allocators' core-scaled defaults only: the server's threads still "
    "share this machine's cores, so contention and parallelism are this machine's"
)


def family(library: str | None) -> str:
    """`glibc` (no preloaded library), `jemalloc`, or `other`, from the library's name."""
    if library is None:
        return "glibc"
    return "jemalloc" if "jemalloc" in library else "other"


def environ(library: str | None, env: Mapping[str, str], cores: int | None) -> dict[str, str]:
    """The variables to add to an allocator's `env` so that it runs with the defaults of a
    host of `cores` cores; {} when `cores` is None or the allocator has none that scale."""
    if cores is None:
        return {}
    kind = family(library)
    if kind == "glibc":
        tunables = env.get("GLIBC_TUNABLES", "")
        if "MALLOC_ARENA_MAX" in env or "glibc.malloc.arena_max" in tunables:
            return {}
        return {"MALLOC_ARENA_MAX": str(GLIBC_ARENAS_PER_CORE * cores)}
    if kind == "jemalloc":
        conf = env.get("MALLOC_CONF", "")
        if "narenas:" in conf:
            return {}
        narenas = f"narenas:{JEMALLOC_ARENAS_PER_CPU * cores}"
        return {"MALLOC_CONF": f"{conf},{narenas}" if conf else narenas}
    return {}


def describe(library: str | None, cores: int) -> str:
    """What --host-cores sets for this allocator, in words."""
    kind = family(library)
    if kind == "glibc":
        return f"MALLOC_ARENA_MAX={GLIBC_ARENAS_PER_CORE * cores} (glibc: 8 x {cores} cores)"
    if kind == "jemalloc":
        return f"narenas:{JEMALLOC_ARENAS_PER_CPU * cores} (jemalloc: 4 x {cores} CPUs)"
    return "nothing (its defaults do not scale with the core count)"
