"""Assemble a run's RunResult from what the runner gathered.

The runner makes a `ResultBuilder` when the run starts, tells it which allocator it verified in
the server, and at the end hands over the server, the batches' statistics, what the sampling
threads recorded and the server's own answers; `build` returns the result with its summary and
threshold checks. The load and its schedule go into the result as the spec holds them.
"""

from __future__ import annotations

import resource
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import psutil

from sandbox.allocators import registry as allocators
from sandbox.config.run_spec import RunSpec
from sandbox.load.stats import BatchStats
from sandbox.measure import metadata
from sandbox.measure.thresholds import check_thresholds
from sandbox.results import summary
from sandbox.results.conditions import (
    AllocatorInfo,
    HostInfo,
    LoadInfo,
    ServerInfo,
    running_harness,
)
from sandbox.results.heap import ProfileInfo, TopObjects
from sandbox.results.model import RunResult, Status
from sandbox.results.releases import CollectionInfo, TrimInfo
from sandbox.results.sampling import AgentProcess, Columns, Phase, SamplerInfo
from sandbox.results.shapes import Mismatch, from_plain

SOURCE = (
    "psutil memory_info().rss; probes: memory_full_info() uss/pss, GET /stats, "
    "the agent's memory op in each server process"
)
# A server that ended on its own, or was stopped for it, has an exit code worth recording.
_EXIT_RECORDED: tuple[Status, ...] = ("server-died", "server-hung", "memory-cap")


def utc_now() -> str:
    """UTC ISO-8601 to the second, with a Z."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class StartedServer(Protocol):
    """What the result records of the server process (a `launch.ServerProcess`)."""

    @property
    def command(self) -> list[str]: ...

    @property
    def pid(self) -> int: ...

    @property
    def ready_url(self) -> str: ...


@dataclass(frozen=True)
class Sampled:
    """What the sampling threads recorded."""

    samples: Columns
    probes: Columns
    phases: list[Phase]
    decimation: int
    """How many raw samples each stored one stands for."""
    peak_rss_bytes: int
    """The highest raw sample, stored or not."""
    vmhwm_bytes: int | None
    """The kernel's peak RSS of the server, read before it stopped."""


@dataclass(frozen=True)
class AgentsSeen:
    """Whether the agent was injected, and each server process the probe saw."""

    injected: bool
    processes: list[AgentProcess]


class ResultBuilder:
    """One run's result, assembled from the runner's parts."""

    def __init__(
        self, spec: RunSpec, run_id: str, *, root: Path, started_at: str | None = None
    ) -> None:
        self.spec = spec
        self.run_id = run_id
        self.root = root
        """Where the Locust file is named from, and whose git commit the host section reads."""
        self.started_at = started_at or utc_now()
        self._allocator: AllocatorInfo | None = None
        self._host: HostInfo | None = None
        self._harness = running_harness()

    def allocator_verified(
        self, resolved: allocators.ResolvedAllocator, mapped: list[str], malloc_owner: str | None
    ) -> None:
        """The allocator was found mapped in the server (`mapped`), serving `malloc_owner`."""
        self._allocator = AllocatorInfo(
            name=resolved.name,
            library=resolved.path,
            env=dict(resolved.allocator.env),
            verified_loaded=True,
            mapped_libraries=mapped,
            package=resolved.allocator.package,
            package_version=allocators.package_version(resolved.allocator.package),
            malloc_owner=malloc_owner,
        )

    def build(
        self,
        *,
        status: Status,
        detail: str,
        notes: Sequence[str],
        server: StartedServer,
        env: Mapping[str, str],
        exit_code: int | None,
        stats: Sequence[BatchStats],
        sampled: Sampled,
        trim: TrimInfo | None,
        objects: Mapping[str, Mapping[str, Any]],
        profile: ProfileInfo | None,
        agents: AgentsSeen,
        collection: CollectionInfo | None = None,
    ) -> RunResult:
        """The result: `detail` and the `notes` joined into its status detail; `trim` is what
        the trim phase did (None: not run), `collection` the full garbage collection before it
        (None: not asked for); `objects` the server's answers ({} when not asked
        or not answered). Called every few seconds for a checkpoint: the machine's facts are
        gathered once."""
        if self._allocator is None:
            raise RuntimeError("ResultBuilder.build before allocator_verified")
        allocator = self._allocator
        if self._host is None:
            self._host = metadata.collect(self.root)
        spec = self.spec
        notes = list(notes)
        ended_at = utc_now()
        settings = spec.server.settings
        result = RunResult(
            run_id=self.run_id,
            status=status,
            status_detail="",
            experiment=spec.experiment,
            started_at=self.started_at,
            ended_at=ended_at,
            allocator=allocator,
            server=ServerInfo(
                handler=settings.handler,
                sleep_ms=settings.sleep_ms,
                threads=settings.threads,
                max_body_bytes=settings.max_body_bytes,
                pymalloc=spec.server.pymalloc,
                command=server.command,
                env=dict(env),
                pid=server.pid,
                exit_code=exit_code if status in _EXIT_RECORDED else None,
                workers=spec.target.workers,
                app=spec.target.app or ("cmd" if spec.target.cmd else None),
                ready_url=server.ready_url,
            ),
            load=LoadInfo(spec.load.relative_to(self.root), spec.schedule, list(stats)),
            host=self._host,
            sampler=SamplerInfo(
                interval_s=spec.sampler.interval_s,
                probe_interval_s=spec.sampler.probe_interval_s,
                source=SOURCE,
                decimation=sampled.decimation,
                peak_rss_bytes=sampled.peak_rss_bytes,
                harness_rss_bytes=psutil.Process().memory_info().rss,
                harness_peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                agent_injected=agents.injected,
                agents=agents.processes,
            ),
            phases=sampled.phases,
            samples=sampled.samples,
            probes=sampled.probes,
            summary=summary.compute_summary(
                sampled.samples, sampled.phases, sampled.vmhwm_bytes, sampled.probes
            ),
            repeat=spec.repeat,
            parameters=dict(spec.parameters),
            trim=trim,
            collection=collection,
            objects=_objects(objects, notes),
            profile=profile,
            harness=self._harness,
        )
        return replace(
            result,
            status_detail="; ".join(d for d in (detail, *notes) if d),
            thresholds=check_thresholds(spec.thresholds, result),
        )


def _objects(answers: Mapping[str, Mapping[str, Any]], notes: list[str]) -> dict[str, TopObjects]:
    out = {}
    for moment, answer in answers.items():
        try:
            out[moment] = from_plain(TopObjects, answer)
        except Mismatch as exc:
            notes.append(f"the object summary at {moment} is not recorded: {exc}")
    return out
