"""One run, start to finish: launch under an allocator, verify it, sample, drive batches, write.

No click here: progress goes to a callback, faults become the result's status.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import resource
import secrets
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from sandbox import allocators, results, storage
from sandbox.config import REPO_ROOT, RunSpec
from sandbox.errors import ConfigError, LoadError, ServerError
from sandbox.load import driver
from sandbox.load.stats import BatchStats, read_entries, summarise
from sandbox.loopback import get_json
from sandbox.measure import metadata
from sandbox.measure.launch import ServerProcess, build_environ, launch
from sandbox.measure.profiling import MemrayProfile
from sandbox.measure.sampler import Live, ProbePoller, ProcessTree, RssSampler, read_vmhwm
from sandbox.measure.thresholds import check_thresholds
from sandbox.processes import silent_state, stop_process
from sandbox.results import (
    AllocatorInfo,
    Columns,
    LoadInfo,
    RunResult,
    ServerInfo,
    Status,
)
from sandbox.server_settings import OWNER_FILE_ENV

POLL_S = 0.2


@dataclass(frozen=True)
class Progress:
    """What the run is doing now, for a progress display."""

    phase: str
    batch: int
    batches: int
    elapsed_s: float
    rss_bytes: int
    requests_done: int
    rps: float


ProgressCallback = Callable[[Progress], None]


class _Stopped(Exception):
    """The run ended early; `status` says why."""

    def __init__(self, status: Status, detail: str) -> None:
        super().__init__(detail)
        self.status: Status = status
        self.detail = detail


def make_run_id(allocator: str, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{allocator}-{secrets.token_hex(2)}"


def _utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "vanished"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class _Run:
    """The mutable state of one run while it is under way."""

    def __init__(self, spec: RunSpec, server: ServerProcess, on_progress: ProgressCallback | None):
        self.spec = spec
        self.server = server
        self.on_progress = on_progress
        self.t0 = time.monotonic()
        self.live = Live()
        self.batch = 0
        self.phase = "start"
        self.stats: list[BatchStats] = []
        self.notes: list[str] = []
        # Several processes (uvicorn workers, a user's command): sample the whole tree.
        tree = spec.target.workers > 1 or spec.target.cmd is not None
        self.sampler = RssSampler(
            server.pid,
            spec.interval_s,
            self.t0,
            max_rss_bytes=spec.max_rss_bytes,
            on_cap=lambda _rss: self.kill_server(),
            live=self.live,
            tree=tree,
        )
        self.probe = ProbePoller(
            server.pid,
            server.url,
            spec.probe_interval_s,
            self.t0,
            self.live,
            tree=ProcessTree(server.pid) if tree else None,
            # With several workers, any one of them answers: their counters would be mixed.
            ask_server=spec.target.workers == 1,
        )
        self.trim: dict[str, Any] = {}
        self.objects: dict[str, Any] = {}

    def kill_server(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.server.pid, signal.SIGKILL)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def mark(self, phase: str) -> None:
        self.phase = phase
        self.sampler.mark(phase)

    def check(self) -> None:
        """Raise _Stopped if the server died, hung or passed the memory cap, or if a sampling
        thread failed (its figures would be silently stale); report progress."""
        for thread in (self.sampler, self.probe):
            if thread.error is not None:
                raise _Stopped("failed", f"the {thread.name} thread failed: {thread.error!r}")
        if self.sampler.cap_hit.is_set():
            cap = self.spec.max_rss_bytes or 0
            raise _Stopped(
                "memory-cap",
                f"the server's RSS passed --max-rss {cap / 2**20:.0f} MiB during {self.phase}; "
                "it was stopped",
            )
        code = self.server.proc.poll()
        if code is not None or self.sampler.gone.is_set():
            raise _Stopped("server-died", f"the server {_describe_exit(code)} during {self.phase}")
        silent_s = time.monotonic() - self.probe.answered_at
        if silent_s > self.spec.hang_timeout_s and self.probe.is_alive():
            state = silent_state(self.server.pid)  # before the kill: T (stopped), D, ...
            self.kill_server()
            raise _Stopped(
                "server-hung",
                f"the server answered nothing for {self.spec.hang_timeout_s:g} s during "
                f"{self.phase}{state}; it was killed",
            )
        if self.on_progress:
            self.on_progress(
                Progress(
                    self.phase,
                    self.batch,
                    self.spec.batches,
                    self.now(),
                    self.live.rss_bytes,
                    self.live.requests_done,
                    self.live.rps,
                )
            )

    def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(POLL_S, left))

    def run_batch(self, workdir: Path) -> None:
        spec = self.spec
        load = driver.LoadSpec(
            locustfile=spec.locustfile,
            host_url=self.server.url,
            tags=spec.tags,
            spawn_rate=spec.spawn_rate,
            iterations=spec.iterations,
            timeout_s=spec.batch_timeout_s,
            model=spec.model,
            workers=spec.load_workers,
            drill=spec.drill,
        )
        batch_dir = workdir / f"batch-{self.batch}"
        batch_dir.mkdir()
        start, epoch = self.now(), time.time()
        # Locust's --run-time does not bound a load shape: the harness holds the limit itself.
        deadline = time.monotonic() + spec.batch_timeout_s + 30
        with driver.start(load, batch_dir) as locust:
            while locust.proc.poll() is None:
                self.check()
                if time.monotonic() > deadline:
                    stop_process(locust.proc, timeout_s=15.0)
                    raise LoadError(
                        f"Locust overran batch {self.batch}'s {spec.batch_timeout_s:g} s limit "
                        "(run.batch_timeout_s) and was stopped"
                    )
                for i, worker in enumerate(locust.workers, 1):
                    if worker.poll() not in (None, 0):  # its share would never arrive
                        raise LoadError(
                            f"Locust worker {i} {_describe_exit(worker.returncode)} during "
                            f"batch-{self.batch}"
                        )
                time.sleep(POLL_S)
            code = locust.proc.returncode
            self.check()  # a server that died under load is the real story, not Locust's errors
            if code != 0 or not locust.stats_json.exists():
                how = _describe_exit(code) if code != 0 else "wrote no statistics"
                tail = locust.log_tail()
                raise LoadError(
                    f"Locust {how} during {self.phase}"
                    + (f"; its last output: {tail}" if tail else "")
                )
            stats = summarise(
                read_entries(locust.stats_json),
                index=self.batch,
                start_s=start,
                end_s=self.now(),
                epoch_at_start=epoch,
                exit_code=code,
                plans=spec.drill,
            )
        self.stats.append(stats)
        self.notes.extend(shortfall(spec, stats))

    def drive(self) -> None:
        spec = self.spec
        self.mark("baseline")
        self.wait(spec.baseline_s)
        with tempfile.TemporaryDirectory(prefix="sandbox-run-") as tmp:
            for b in range(1, spec.batches + 1):
                self.batch = b
                self.mark(f"batch-{b}")
                self.run_batch(Path(tmp))
                if b < spec.batches and spec.pause_s > 0:
                    self.mark(f"pause-{b}")
                    self.wait(spec.pause_s)
        self.record_objects("end-of-load")
        self.mark("idle")
        self.wait(spec.idle_s)
        self.record_objects("after-idle")
        if spec.trim_s > 0:
            self.mark("trim")
            self.trim = self.debug("POST", "/debug/trim") or {}
            if not self.trim:
                self.notes.append("the server has no POST /debug/trim; nothing was trimmed")
            self.wait(spec.trim_s)

    def debug(self, method: str, path: str, timeout_s: float = 30.0) -> dict[str, Any] | None:
        """Call one of the server's loopback-only debug routes; None if it has none."""
        answer = get_json(f"{self.server.url}{path}", timeout_s, method=method)
        if answer is not None:  # a long answer (pympler) is not a hang, even if /stats waited
            self.probe.answered_at = time.monotonic()
        return answer

    def record_objects(self, moment: str) -> None:
        """Pympler's top types by size now (opt-in: it walks every object, which takes time and
        allocates, so it runs in a phase of its own that no summary figure reads)."""
        if not self.spec.objects:
            return
        self.mark(f"objects-{moment}")
        self.check()
        answer = self.debug("GET", "/debug/objects?limit=15", timeout_s=120.0)
        if answer is None:
            self.notes.append(f"no object summary at {moment}: GET /debug/objects failed")
        else:
            self.objects[moment] = {**answer, "t_s": round(self.now(), 3)}


def shortfall(spec: RunSpec, stats: BatchStats) -> list[str]:
    """Notes when a batch sent less than it was asked to (time limit, or a rate not reached)."""
    if spec.model.name == "iterations":
        expected = spec.iterations * len(spec.tags)
        if stats.requests < expected:
            return [
                f"batch {stats.index} stopped at its {spec.batch_timeout_s:g} s time limit after "
                f"{stats.requests} of {expected} requests"
            ]
    elif spec.model.paced:
        wanted = spec.model.expected_requests(0.0, spec.model.duration_s)
        if wanted > 0 and stats.requests < 0.9 * wanted:
            return [
                f"batch {stats.index} reached {stats.requests / wanted:.0%} of the "
                f"{spec.model.describe()} target ({stats.requests} of {wanted:.0f} requests): "
                "the server answered too slowly for the users; raise --users"
            ]
    return []


def run_once(
    spec: RunSpec, *, on_progress: ProgressCallback | None = None, root: Path = REPO_ROOT
) -> tuple[RunResult, Path]:
    """Run the whole pipeline and write the result; faults end in a result marked by status.

    Raises AllocatorError (before anything is measured) when the allocator library is missing
    or not really mapped in the server, ServerError when the server does not start.
    """
    if spec.profile and (spec.target.cmd or spec.target.workers > 1):
        raise ConfigError(
            "--profile memray follows one Python process: it cannot profile a --cmd or "
            "--server-workers above 1"
        )
    resolved = allocators.resolve(spec.allocator, spec.custom_allocators)
    run_id = make_run_id(spec.allocator)
    env = build_environ(spec.server.to_environ(), resolved.environ(), pymalloc=spec.pymalloc)
    folder = spec.results_dir if spec.experiment else spec.results_dir / "runs"
    storage.check_writable(folder)  # now, not after an hour of measuring
    profiler = MemrayProfile(folder / f"{run_id}.memray") if spec.profile == "memray" else None
    started_at = _utc()
    status: Status = "ok"
    detail = ""
    if spec.target.app and profiler is None:
        env[OWNER_FILE_ENV] = str(folder / f".{run_id}.malloc-owner")
    with launch(
        env,
        host=spec.host,
        port=spec.port,
        ready_timeout_s=spec.ready_timeout_s,
        wrap=profiler.wrap() if profiler else (),
        stop_timeout_s=60.0 if profiler else 5.0,
        target=spec.target,
    ) as server:
        if spec.target.cmd:
            _check_loopback_only(server)
        mapped = _verify_allocator(resolved, server)
        malloc_owner = _malloc_owner(server, env.pop(OWNER_FILE_ENV, None))
        allocators.verify_malloc_owner(resolved, malloc_owner)
        run = _Run(spec, server, on_progress)
        run.sampler.start()
        run.probe.start()
        try:
            run.drive()
        except KeyboardInterrupt:
            status, detail = "interrupted", f"interrupted during {run.phase}"
        except _Stopped as stop:
            status, detail = stop.status, stop.detail
        except LoadError as exc:
            status, detail = "failed", str(exc)
        finally:
            vmhwm = read_vmhwm(server.pid)
            samples: Columns = run.sampler.stop()
            probes: Columns = run.probe.stop()
            if run.probe.tree is not None and run.probe.tree.vanished and status == "ok":
                run.notes.append(
                    "server processes exited during the run (their supervisor may have replaced "
                    f"them; see the server log): {', '.join(run.probe.tree.vanished)}"
                )
    # Read after launch() has stopped and reaped the server: a server killed at the memory cap
    # may not have been reaped yet when the run noticed the cap.
    exit_code = server.proc.returncode
    detail = "; ".join([d for d in (detail, *run.notes) if d])
    profile = profiler.finish() if profiler else {}
    result = RunResult(
        run_id=run_id,
        status=status,
        status_detail=detail,
        experiment=spec.experiment,
        started_at=started_at,
        ended_at=_utc(),
        allocator=AllocatorInfo(
            name=resolved.name,
            library=resolved.path,
            env=dict(resolved.allocator.env),
            verified_loaded=True,
            mapped_libraries=mapped,
            package=resolved.allocator.package,
            package_version=allocators.package_version(resolved.allocator.package),
            malloc_owner=malloc_owner,
        ),
        server=ServerInfo(
            handler=spec.server.handler,
            sleep_ms=spec.server.sleep_ms,
            threads=spec.server.threads,
            max_body_bytes=spec.server.max_body_bytes,
            pymalloc=spec.pymalloc,
            command=server.command,
            env=env,
            pid=server.pid,
            exit_code=exit_code if status in ("server-died", "server-hung", "memory-cap") else None,
            workers=spec.target.workers,
            app=spec.target.app or ("cmd" if spec.target.cmd else None),
            ready_url=server.ready_url,
        ),
        load=LoadInfo(
            locustfile=_relative(spec.locustfile, root),
            tags=list(spec.tags),
            users=spec.users,
            spawn_rate=spec.spawn_rate,
            iterations=spec.iterations,
            batches=spec.batches,
            pause_s=spec.pause_s,
            baseline_s=spec.baseline_s,
            idle_s=spec.idle_s,
            stats=run.stats,
            model=spec.model.to_dict(),
            workers=spec.load_workers,
        ),
        host=metadata.collect(root),
        sampler={
            "interval_s": spec.interval_s,
            "probe_interval_s": spec.probe_interval_s,
            "source": "psutil memory_info().rss; probes: memory_full_info() uss/pss, GET /stats",
            "decimation": run.sampler.store.stride,
            "peak_rss_bytes": run.sampler.peak_rss_bytes,
            "harness_rss_bytes": psutil.Process().memory_info().rss,
            "harness_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        },
        phases=run.sampler.phases,
        samples=samples,
        probes=probes,
        summary=results.compute_summary(samples, run.sampler.phases, vmhwm, probes),
        repeat=spec.repeat,
        parameters=dict(spec.parameters),
        trim=run.trim,
        objects=run.objects,
        profile=profile,
    )
    result = replace(result, thresholds=check_thresholds(spec.thresholds, result))
    suffix = ".json.gz" if spec.compress else ".json"
    return result, storage.save(result, folder / f"{run_id}{suffix}")


def _check_loopback_only(server: ServerProcess) -> None:
    """A user's command chooses its own address: refuse one that listens beyond this machine."""
    for proc in ProcessTree(server.pid).processes():
        try:
            sockets = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        for sock in sockets:
            if (
                sock.status == psutil.CONN_LISTEN
                and not ipaddress.ip_address(sock.laddr.ip).is_loopback
            ):
                raise ServerError(
                    f"the --cmd server listens on {sock.laddr.ip}:{sock.laddr.port}, beyond this "
                    "machine; bind it to {host} (127.0.0.1), e.g. --host {host} in the command"
                )


def _verify_allocator(resolved: allocators.ResolvedAllocator, server: ServerProcess) -> list[str]:
    """The allocator must be mapped in the server and in every process it started (workers)."""
    mapped = allocators.verify_loaded(resolved, server.pid)
    for proc in ProcessTree(server.pid).processes()[1:]:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            allocators.verify_loaded(resolved, proc.pid)
    return mapped


def _malloc_owner(server: ServerProcess, owner_file: str | None) -> str | None:
    """Whose `malloc` the server calls: from /health (ours), from the file an app's launcher
    wrote, or unknown (a user's command: the memory-map check stands alone)."""
    if server.target.ours:
        try:
            owner = server.health().get("malloc_owner")
        except (OSError, ValueError) as exc:
            raise ServerError(f"the server stopped answering /health after start: {exc}") from None
        return owner if isinstance(owner, str) else None
    if owner_file is None:
        return None
    path = Path(owner_file)
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
    finally:
        path.unlink(missing_ok=True)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
