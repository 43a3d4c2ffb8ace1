"""The result file: one self-describing, versioned JSON document per run (`RunResult`), its
format's history and the run's status.

Its sections live by concept: what the run ran under (`conditions`), what it measured over time
(`sampling`), its headline figures (`summary`), what releasing memory did (`releases`), what was
in the heap (`heap`) and the limits checked (`thresholds`). `shapes` writes and reads them all;
`files` reads and writes the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from sandbox.results.conditions import AllocatorInfo, HarnessInfo, HostInfo, LoadInfo, ServerInfo
from sandbox.results.heap import ProfileInfo, TopObjects
from sandbox.results.releases import CollectionInfo, TrimInfo
from sandbox.results.sampling import Columns, Phase, SamplerInfo
from sandbox.results.shapes import empty_when_none, omitted_when_none
from sandbox.results.summary import Summary
from sandbox.results.thresholds import ThresholdCheck

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
#     Also (still 5, additive): probes gain pymalloc_blocks (pymalloc's blocks in use, its
#     share of py_allocated_blocks), absent from older files.
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
