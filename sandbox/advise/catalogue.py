"""The remedy catalogue: named arms, each a way users cut a Python service's memory, with what
it changes, how to deploy it and its caveats.

An arm runs as an allocator of the registry (a library to preload and variables to set), so the
race runs it as an experiment runs allocators; a user's own arms are benchmark.yml's
`allocators:` entries, named with --arms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sandbox.allocators.registry import BUILTIN, Allocator

TRIM_EVERY_ENV = "SANDBOX_AGENT_TRIM_EVERY_S"
"""Read by the agent inside the server (sandbox/agent/periodic_trim.py)."""
GUNICORN_ARGS_ENV = "GUNICORN_CMD_ARGS"
"""gunicorn adds these arguments to its command line (gunicorn >= 19.7)."""


@dataclass(frozen=True)
class Arm:
    """One remedy as the race runs it and as a service deploys it."""

    name: str
    changes: str
    """What it changes, in one sentence."""
    library: str | None = None
    """Soname to LD_PRELOAD; None for glibc's malloc."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Variables set in the server's environment."""
    package: str | None = "libc6"
    """The Debian package that ships the library."""
    deploy_env: Mapping[str, str] | None = None
    """Variables a deployment sets (None: `env`); the periodic trim's is the agent's, not
    the service's, so it deploys as code instead."""
    deploy_code: str = ""
    """Code the service adds, when variables alone do not deploy it."""
    caveats: tuple[str, ...] = ()
    requires: str = ""
    """`gunicorn`: only for a --cmd that runs gunicorn; empty: any server."""

    def allocator(self) -> Allocator:
        return Allocator(self.name, self.library, dict(self.env), self.package, self.changes)

    @property
    def deployed_env(self) -> Mapping[str, str]:
        return self.env if self.deploy_env is None else self.deploy_env

    def skip_reason(self, cmd: str | None) -> str | None:
        """Why this arm cannot run on this target, in one line; None when it can."""
        if self.requires == "gunicorn" and (cmd is None or "gunicorn" not in cmd):
            return (
                f"{self.name}: skipped: worker recycling needs a --cmd that runs gunicorn "
                "(it adds --max-requests to gunicorn's command line)"
            )
        return None


_JEMALLOC_PAGES = (
    "jemalloc built for 4 KiB pages aborts on aarch64 kernels with 16K or 64K pages "
    "(<jemalloc>: Unsupported system page size): check `getconf PAGESIZE` on the hosts"
)
_PRELOAD = "LD_PRELOAD replaces malloc in every process started with it, including shells"
_TRIM_CODE = """import ctypes, threading, time

def _trim_every(seconds: float) -> None:
    libc = ctypes.CDLL("libc.so.6")
    while True:
        time.sleep(seconds)
        libc.malloc_trim(0)  # blocks this thread, not the event loop

threading.Thread(target=_trim_every, args=(5.0,), daemon=True).start()"""

ARMS: tuple[Arm, ...] = (
    Arm("glibc", "nothing: glibc malloc with its defaults (the baseline)"),
    Arm(
        "glibc-arena2",
        "glibc malloc with at most 2 arenas (MALLOC_ARENA_MAX=2) instead of 8 per core",
        env={"MALLOC_ARENA_MAX": "2"},
        caveats=("fewer arenas: threads contend for malloc's locks; watch p95",),
    ),
    Arm(
        "glibc-arena4",
        "glibc malloc with at most 4 arenas (MALLOC_ARENA_MAX=4)",
        env={"MALLOC_ARENA_MAX": "4"},
        caveats=("fewer arenas: threads contend for malloc's locks; watch p95",),
    ),
    Arm(
        "glibc-thresholds",
        "glibc malloc with fixed trim and mmap thresholds of 128 KiB (GLIBC_TUNABLES): blocks "
        "from 128 KiB up are mmapped and unmapped on free, and the heap top is trimmed past "
        "128 KiB; fixing either turns off glibc's dynamic mmap threshold",
        env={
            "GLIBC_TUNABLES": (
                "glibc.malloc.trim_threshold=131072:glibc.malloc.mmap_threshold=131072"
            )
        },
        caveats=(
            "more mmap/munmap system calls for large blocks: watch throughput",
            "the older spelling is MALLOC_TRIM_THRESHOLD_=131072 MALLOC_MMAP_THRESHOLD_=131072",
        ),
    ),
    Arm(
        "glibc-trim5s",
        "glibc malloc, with malloc_trim(0) every 5 s from a thread inside the server, off the "
        "event loop",
        env={TRIM_EVERY_ENV: "5"},
        deploy_env={},
        deploy_code=_TRIM_CODE,
        caveats=(
            "a trim can block its thread for tens of ms while it holds the arena locks: "
            "requests that allocate meanwhile wait; watch p95",
            "in the race the sandbox's agent does the trimming; in production, the service's "
            "own thread (the code below)",
        ),
    ),
    Arm(
        "pymalloc-off",
        "glibc malloc for small Python objects too (PYTHONMALLOC=malloc), instead of pymalloc's "
        "arenas",
        env={"PYTHONMALLOC": "malloc"},
        caveats=("pymalloc is faster for small objects: watch throughput",),
    ),
    Arm(
        "jemalloc",
        "jemalloc 5 instead of glibc malloc (LD_PRELOAD)",
        library="libjemalloc.so.2",
        package="libjemalloc2",
        caveats=(_JEMALLOC_PAGES, _PRELOAD),
    ),
    Arm(
        "jemalloc-tuned",
        "jemalloc with background purging threads and 5 s decay "
        "(background_thread:true,dirty_decay_ms:5000,muzzy_decay_ms:5000), after jemalloc's "
        "TUNING.md for memory first",
        library="libjemalloc.so.2",
        env={"MALLOC_CONF": "background_thread:true,dirty_decay_ms:5000,muzzy_decay_ms:5000"},
        package="libjemalloc2",
        caveats=(_JEMALLOC_PAGES, _PRELOAD, "background threads: one more thread per arena group"),
    ),
    Arm(
        "jemalloc-decay0",
        "jemalloc returning freed pages at once (dirty_decay_ms:0,muzzy_decay_ms:0)",
        library="libjemalloc.so.2",
        env={"MALLOC_CONF": "dirty_decay_ms:0,muzzy_decay_ms:0"},
        package="libjemalloc2",
        caveats=(
            _JEMALLOC_PAGES,
            _PRELOAD,
            "every free page goes back at once: more madvise calls",
        ),
    ),
    Arm(
        "mimalloc",
        "mimalloc 2 instead of glibc malloc (LD_PRELOAD)",
        library="libmimalloc.so.2",
        package="libmimalloc2.0",
        caveats=(
            _PRELOAD,
            "MIMALLOC_PURGE_DELAY=0 was reported to cost 31 % throughput for no RSS saving",
        ),
    ),
    Arm(
        "tcmalloc",
        "gperftools tcmalloc (minimal) instead of glibc malloc (LD_PRELOAD)",
        library="libtcmalloc_minimal.so.4",
        package="libtcmalloc-minimal4",
        caveats=(_PRELOAD,),
    ),
    Arm(
        "tcmalloc-release10",
        "tcmalloc returning free memory to the system faster (TCMALLOC_RELEASE_RATE=10, default 1)",
        library="libtcmalloc_minimal.so.4",
        env={"TCMALLOC_RELEASE_RATE": "10"},
        package="libtcmalloc-minimal4",
        caveats=(_PRELOAD, "faster release: more madvise calls"),
    ),
    Arm(
        "gunicorn-recycle",
        "gunicorn restarts each worker after about 1000 requests (--max-requests 1000 "
        "--max-requests-jitter 100), so whatever a worker kept goes with it",
        env={GUNICORN_ARGS_ENV: "--max-requests 1000 --max-requests-jitter 100"},
        requires="gunicorn",
        caveats=(
            "a restarting worker drops its in-flight work's warm state (caches, connections)",
            "with one worker, requests wait while it restarts",
        ),
    ),
)
BY_NAME: dict[str, Arm] = {a.name: a for a in ARMS}
BASELINE = "glibc"


def user_arm(allocator: Allocator) -> Arm:
    """A benchmark.yml allocator as an arm (its description says what it changes)."""
    return Arm(
        allocator.name,
        allocator.description or f"{allocator.name} from benchmark.yml",
        library=allocator.library,
        env=dict(allocator.env),
        package=allocator.package,
    )


def choose(names: Sequence[str] | None, custom: Mapping[str, Allocator]) -> list[Arm]:
    """The arms named (catalogue first, then benchmark.yml's allocators, then the built-in
    allocators), or the whole catalogue; KeyError names an unknown one."""
    if not names:
        return list(ARMS)
    out = []
    for name in names:
        if name in custom:
            out.append(user_arm(custom[name]))
        elif name in BY_NAME:
            out.append(BY_NAME[name])
        elif name in BUILTIN:
            out.append(user_arm(BUILTIN[name]))
        else:
            raise KeyError(name)
    return out
