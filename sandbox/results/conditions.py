"""What a run ran under: the allocator, the server, the load, the host and the harness process.

Each is written as it was set up (or found) before the first sample; none changes during the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.load.models import LoadModel
from sandbox.load.spec import LoadSpec, Schedule
from sandbox.load.stats import BatchStats
from sandbox.results.shapes import flattened, read, read_also
from sandbox.system import liveness


@dataclass(frozen=True)
class AllocatorInfo:
    """Which allocator the server ran under, and the proof that it was really loaded."""

    name: str
    """Registry name, e.g. `jemalloc` or `glibc-arena2`."""
    library: str | None
    """Path preloaded with LD_PRELOAD; None for glibc's own malloc."""
    env: dict[str, str]
    """Allocator environment variables set before the server started (MALLOC_CONF, ...)."""
    verified_loaded: bool
    """True when `library` was found in the server's /proc/PID/maps (always True for glibc)."""
    mapped_libraries: list[str]
    """Every allocator library seen in the server's memory map."""
    package: str | None = None
    """Debian package that ships the library, when known."""
    package_version: str | None = None
    """Version of that package, from dpkg."""
    malloc_owner: str | None = None
    """The library whose `malloc` the server calls (dladdr inside the server), when it says."""


@dataclass(frozen=True)
class ServerInfo:
    """How the server ran."""

    handler: str
    """`sync` (threadpool) or `async`."""
    sleep_ms: int
    """Simulated database latency per request."""
    threads: int
    """Threadpool size for the sync handler."""
    max_body_bytes: int
    """Request bodies over this get 413."""
    pymalloc: bool
    """False when the server ran with PYTHONMALLOC=malloc."""
    command: list[str]
    """The exact command line of the server process."""
    env: dict[str, str]
    """The whole environment the harness built for the server."""
    pid: int | None
    """The server's process id."""
    exit_code: int | None = None
    """How the server ended when it died on its own (negative: killed by that signal)."""
    workers: int = 1
    """Server processes serving requests (uvicorn --workers); memory is then the process tree's."""
    app: str | None = None
    """`module:attr` of a user's ASGI app, or `cmd` for a user's server command; None: ours."""
    ready_url: str | None = None
    """The URL polled until the server was ready."""


@dataclass(frozen=True)
class LoadInfo:
    """The workload the harness drove: the load as configured, its schedule, and what Locust
    reported for each batch. On disk one flat mapping (format 3's keys)."""

    spec: LoadSpec = field(metadata=flattened())
    """The Locust file, plans, users and load model of every batch."""
    schedule: Schedule = field(metadata=flattened())
    """Batches, the pauses between them, baseline and idle."""
    stats: list[BatchStats]
    """One entry per batch that ran."""

    def on_disk(self, plain: dict[str, Any]) -> dict[str, Any]:
        """Format 3's order, with the model's `users` after the plans and its pace; the spec's
        settings for driving Locust alone are left out."""
        return {
            **{k: plain[k] for k in ("locustfile", "tags")},
            "users": self.spec.users,
            **{k: plain[k] for k in ("spawn_rate", "iterations", *_SCHEDULE_KEYS, "stats")},
            "model": {**plain["model"], "pace": round(self.spec.model.pace(), 6)},
            "workers": plain["workers"],
        }

    @classmethod
    def from_disk(cls, data: Mapping[str, Any], where: str) -> Mapping[str, Any]:
        """The model's `users` is written beside the plans too (checked, not read: the model's
        are); format 1-2 files have no model: drill's iterations, and those `users`."""
        users = read(data.get("users", LoadModel().users), int, f"{where}users")
        return data if data.get("model") else {**data, "model": {"users": users}}


_SCHEDULE_KEYS = ("batches", "pause_s", "baseline_s", "idle_s")


@dataclass(frozen=True)
class HostInfo:
    """The machine and software the run happened on (None: not known, or an older file)."""

    hostname: str | None = None
    python: str | None = None
    """Python version of the harness (and of the stair-stepper it started)."""
    python_implementation: str | None = None
    glibc: str | None = None
    """glibc version, e.g. 2.36."""
    kernel: str | None = None
    machine: str | None = None
    cpu_count: int | None = None
    memory_total_bytes: int | None = None
    sandbox_version: str | None = field(default=None, metadata=read_also("sandbox"))
    """Read from `sandbox` in files before format 1 settled."""
    packages: dict[str, str | None] = field(default_factory=dict)
    """Versions of the packages that shape a run (starlette, uvicorn, locust, ...)."""
    git_commit: str | None = None
    git_dirty: bool | None = None
    """True when tracked files differed from the commit."""


@dataclass(frozen=True)
class HarnessInfo:
    """The harness process that ran the run (format 4 and later): a checkpoint whose harness no
    longer runs is marked `harness-died`. The start time tells a reused pid from the harness."""

    pid: int
    start_ticks: int | None = None
    """When it started, in clock ticks since boot (/proc/PID/stat field 22)."""
    boot_id: str | None = None
    """The boot it ran in (/proc/sys/kernel/random/boot_id)."""
    hostname: str | None = None


def running_harness() -> HarnessInfo:
    """The running process, as a run records its harness."""
    me = liveness.this_process()
    return HarnessInfo(
        pid=me.pid, start_ticks=me.start_ticks, boot_id=me.boot_id, hostname=me.hostname
    )
