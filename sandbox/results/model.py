"""The result file: one self-describing, versioned JSON document per run.

Samples are stored as equal-length columns with the unit in each name. The summary can be
recomputed from the samples and phases (`summary.compute_summary`); files are read and written by
`files`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from sandbox.load.models import LoadModel
from sandbox.load.spec import LoadSpec, Schedule
from sandbox.load.stats import BatchStats
from sandbox.results.sections import (
    CollectionInfo,
    HarnessInfo,
    HostInfo,
    ProfileInfo,
    SamplerInfo,
    ThresholdCheck,
    TopObjects,
    TrimInfo,
)
from sandbox.results.shapes import empty_when_none, flattened, omitted_when_none

FORMAT = "sandbox-run"
# History of FORMAT_VERSION:
# 1 - (0.1.0) first version: allocator, server, load with per-batch Locust stats, host, sampler,
#     phases, samples (sampler rate) and probes (~1 Hz server counters), summary.
# 2 - (0.2.0) the allocator's own view: probes gain alloc_in_use_bytes, alloc_held_bytes,
#     py_allocated_blocks; summary gains in-use/held at end of load and after idle, and the
#     RSS after a `trim` phase; new `trim` (what releasing free memory did), `objects` (pympler
#     top types at end of load and after idle) and `profile` (memray artefacts).
# 3 - (0.3.0) load models and distributed load: load gains `model` (the target: iterations, rate,
#     ramp, spike, soak) and `workers` (Locust worker processes); each batch gains Locust's
#     per-second request and failure counts (timeline_*); server gains `workers` (uvicorn
#     processes), `app` / `ready_url` for a user's own server, and per-worker memory columns in
#     probes; new `thresholds` (limits checked after the run, with their outcome).
# 4 - (0.4.0) checkpoints: a run under way is written every few seconds as
#     `<run_id>.partial.json` with status `running`; one whose harness died is marked
#     `harness-died` by the next command that finds it. New `harness` (pid, start time, boot id
#     and host of the harness process, to tell a live checkpoint from a dead one).
# 5 - (0.5.0) the injected agent: the allocator's counters come from an agent in every Python
#     process of any server (app, command, workers), not from the stair-stepper's /debug/memory;
#     with several processes, probes gain per-process alloc_in_use_bytes_<label> and
#     alloc_held_bytes_<label> beside the sums; sampler gains `agent_injected` and `agents` (each
#     process, whether it had an agent, its answers and failures); trim is asked of every
#     process: it gains `processes` (each one's figures), its top level holds the sums.
#     Also (still 5, additive): probes gain pymalloc_used_bytes, pymalloc_free_bytes,
#     pymalloc_arena_bytes (sums, and per process _<label>) and alloc_active_bytes (jemalloc's
#     stats.active); summary gains pymalloc used/free at baseline, end of load and after idle,
#     and active_end_of_load_bytes; each of sampler.agents may hold `periodic_trim` (its agent's
#     periodic trims: every_s, count, called, total_ms, max_ms, last_ms), absent without one.
#     Also (still 5, additive): `collection` (a full gc.collect() in every process with an
#     agent, in the trim phase before the trim: unreachable objects found, what it freed, each
#     process's figures), absent unless asked for (--collect-garbage).
FORMAT_VERSION = 5
READABLE_VERSIONS = (1, 2, 3, 4, 5)

Status = Literal[
    "ok",
    "interrupted",
    "server-died",
    "server-hung",
    "memory-cap",
    "failed",
    "running",
    "harness-died",
]
STATUSES: tuple[Status, ...] = get_args(Status)

Number = float | int
Columns = dict[str, list[Number]]


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
    def from_disk(cls, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """Format 1-2 files have no model: drill's iterations, and `users`."""
        if data.get("model"):
            return data
        return {**data, "model": {"users": data.get("users", LoadModel().users)}}


_SCHEDULE_KEYS = ("batches", "pause_s", "baseline_s", "idle_s")


@dataclass(frozen=True)
class Phase:
    """A named interval of the run (baseline, batch-N, pause-N, idle)."""

    name: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Summary:
    """Headline figures; recomputable from samples and phases with `compute_summary`."""

    baseline_rss_bytes: int
    """Median RSS during the baseline phase."""
    peak_rss_bytes: int
    """Highest sampled RSS."""
    end_of_load_rss_bytes: int
    """RSS at the end of the last load batch."""
    after_idle_rss_bytes: int
    """Median RSS over the last quarter of the final idle phase."""
    vmhwm_bytes: int | None
    """The kernel's own peak RSS (VmHWM) read at the end; None when unavailable."""
    in_use_baseline_bytes: int | None = None
    """What the application had allocated (allocator's count) at the end of the baseline."""
    held_baseline_bytes: int | None = None
    """What the allocator held from the OS at the end of the baseline."""
    in_use_end_of_load_bytes: int | None = None
    """What the application had allocated and not freed (allocator's count) at end of load."""
    held_end_of_load_bytes: int | None = None
    """What the allocator held from the OS at end of load."""
    in_use_after_idle_bytes: int | None = None
    """As in_use_end_of_load_bytes, at the end of the idle phase."""
    held_after_idle_bytes: int | None = None
    """As held_end_of_load_bytes, at the end of the idle phase."""
    after_trim_rss_bytes: int | None = None
    """Median RSS over the last quarter of the `trim` phase (after asking for free memory back)."""
    baseline_pss_bytes: int | None = None
    """Several server processes: the PSS sum (shared pages once) during the baseline."""
    peak_pss_bytes: int | None = None
    """Several server processes: the highest sampled PSS sum."""
    after_idle_pss_bytes: int | None = None
    """Several server processes: the PSS sum over the last quarter of the idle phase."""
    pymalloc_used_baseline_bytes: int | None = None
    """pymalloc's bytes in live objects at the end of the baseline; None: pymalloc off or
    unread."""
    pymalloc_free_baseline_bytes: int | None = None
    """pymalloc's arena bytes not in live objects at the end of the baseline."""
    pymalloc_used_end_of_load_bytes: int | None = None
    pymalloc_free_end_of_load_bytes: int | None = None
    pymalloc_used_after_idle_bytes: int | None = None
    pymalloc_free_after_idle_bytes: int | None = None
    active_end_of_load_bytes: int | None = None
    """jemalloc's stats.active at the end of load (pages of live slabs); None elsewhere."""

    @property
    def unused_end_of_load_bytes(self) -> int | None:
        """Held but not in use at end of load: fragmentation plus free pages kept."""
        return _gap(self.held_end_of_load_bytes, self.in_use_end_of_load_bytes)

    @property
    def unused_after_idle_bytes(self) -> int | None:
        """Held but not in use after idle."""
        return _gap(self.held_after_idle_bytes, self.in_use_after_idle_bytes)

    @property
    def active_per_allocated(self) -> float | None:
        """active / allocated at the end of load (the definition behind Redis's
        allocator_frag_ratio): jemalloc only."""
        active, allocated = self.active_end_of_load_bytes, self.in_use_end_of_load_bytes
        if active is None or not allocated:
            return None
        return active / allocated


def _gap(held: int | None, in_use: int | None) -> int | None:
    return held - in_use if held is not None and in_use is not None else None


@dataclass(frozen=True)
class RunResult:
    """Everything about one run; `shapes.to_plain` of it is what lands on disk."""

    run_id: str
    """Unique id: UTC start time, allocator and a random suffix."""
    status: Status
    """`ok`, or why the run ended early."""
    status_detail: str
    """One line saying what happened, empty when ok."""
    experiment: str | None
    """Experiment name, None for a single `sandbox run`."""
    started_at: str
    """UTC ISO-8601 start."""
    ended_at: str
    """UTC ISO-8601 end."""
    allocator: AllocatorInfo
    server: ServerInfo
    load: LoadInfo
    host: HostInfo
    """Python, glibc, kernel, CPU count, package versions, git commit."""
    sampler: SamplerInfo
    """Intervals, source, decimation, and the harness's own memory."""
    phases: list[Phase]
    samples: Columns
    """Sampler columns: t_s, rss_bytes, threads (and more when available)."""
    probes: Columns
    """~1 Hz columns: t_s, requests_done, uss_bytes, pss_bytes; the allocator's counters
    (alloc_in_use_bytes, alloc_held_bytes, py_allocated_blocks: sums over the processes whose
    agent gave them); with several processes, per-process columns suffixed _main, _w1, ..."""
    summary: Summary
    repeat: int = 0
    """Repeat index within an experiment."""
    parameters: dict[str, Any] = field(default_factory=dict)
    """Experiment parameters that vary between runs (besides the allocator)."""
    trim: TrimInfo | None = field(default=None, metadata=empty_when_none())
    """What the trim phase asked of the server's processes and what came back; None (on disk
    {}): not run, or no process had an agent to ask."""
    objects: dict[str, TopObjects] = field(default_factory=dict)
    """Pympler's top object types by size, by moment (end-of-load, after-idle); opt-in."""
    profile: ProfileInfo | None = field(default=None, metadata=empty_when_none())
    """The memray capture and what was rendered from it; None (on disk {}): not profiled."""
    thresholds: list[ThresholdCheck] = field(default_factory=list)
    """Each limit checked after the run."""
    harness: HarnessInfo | None = field(default=None, metadata=empty_when_none())
    """The harness process; None (on disk {}) in files before format 4."""
    collection: CollectionInfo | None = field(default=None, metadata=omitted_when_none())
    """A full garbage collection in each process with an agent, before the trim; None (absent
    on disk, added after format 5): not asked for (--collect-garbage), or no process had an
    agent to ask."""

    def on_disk(self, plain: dict[str, Any]) -> dict[str, Any]:
        """The file's format and version first."""
        return {"format": FORMAT, "version": FORMAT_VERSION, **plain}


def column_lengths_ok(columns: Columns) -> bool:
    return len({len(v) for v in columns.values()}) <= 1
