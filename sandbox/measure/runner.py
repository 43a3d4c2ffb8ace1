"""One run, start to finish: launch under an allocator, verify it, sample, drive batches, write.

No click here: progress goes to a callback, faults become the result's status.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from sandbox import allocators, storage
from sandbox.config import REPO_ROOT
from sandbox.errors import ConfigError, LoadError, ServerError
from sandbox.load import driver
from sandbox.load.stats import BatchStats, read_entries, summarise
from sandbox.loopback import get_json
from sandbox.measure.launch import ServerProcess, build_environ, launch
from sandbox.measure.profiling import MemrayProfile
from sandbox.measure.record import ResultBuilder, Sampled
from sandbox.measure.sampler import Live, ProbePoller, ProcessTree, RssSampler, read_vmhwm
from sandbox.processes import silent_state, stop_process
from sandbox.results import Columns, RunResult, Status
from sandbox.server_settings import OWNER_FILE_ENV
from sandbox.spec import RunSpec

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
            spec.sampler.interval_s,
            self.t0,
            max_rss_bytes=spec.limits.max_rss_bytes,
            on_cap=lambda _rss: self.kill_server(),
            live=self.live,
            tree=tree,
        )
        self.probe = ProbePoller(
            server.pid,
            server.url,
            spec.sampler.probe_interval_s,
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
            cap = self.spec.limits.max_rss_bytes or 0
            raise _Stopped(
                "memory-cap",
                f"the server's RSS passed --max-rss {cap / 2**20:.0f} MiB during {self.phase}; "
                "it was stopped",
            )
        code = self.server.proc.poll()
        if code is not None or self.sampler.gone.is_set():
            raise _Stopped("server-died", f"the server {_describe_exit(code)} during {self.phase}")
        silent_s = time.monotonic() - self.probe.answered_at
        if silent_s > self.spec.limits.hang_timeout_s and self.probe.is_alive():
            state = silent_state(self.server.pid)  # before the kill: T (stopped), D, ...
            self.kill_server()
            raise _Stopped(
                "server-hung",
                f"the server answered nothing for {self.spec.limits.hang_timeout_s:g} s during "
                f"{self.phase}{state}; it was killed",
            )
        if self.on_progress:
            self.on_progress(
                Progress(
                    self.phase,
                    self.batch,
                    self.spec.schedule.batches,
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
        batch_dir = workdir / f"batch-{self.batch}"
        batch_dir.mkdir()
        start, epoch = self.now(), time.time()
        # Locust's --run-time does not bound a load shape: the harness holds the limit itself.
        deadline = time.monotonic() + spec.load.timeout_s + 30
        with driver.start(spec.load, self.server.url, batch_dir) as locust:
            while locust.proc.poll() is None:
                self.check()
                if time.monotonic() > deadline:
                    stop_process(locust.proc, timeout_s=15.0)
                    raise LoadError(
                        f"Locust overran batch {self.batch}'s {spec.load.timeout_s:g} s limit "
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
                plans=spec.load.drill,
            )
        self.stats.append(stats)
        self.notes.extend(shortfall(spec, stats))

    def drive(self) -> None:
        spec = self.spec
        schedule = spec.schedule
        self.mark("baseline")
        self.wait(schedule.baseline_s)
        with tempfile.TemporaryDirectory(prefix="sandbox-run-") as tmp:
            for b in range(1, schedule.batches + 1):
                self.batch = b
                self.mark(f"batch-{b}")
                self.run_batch(Path(tmp))
                if b < schedule.batches and schedule.pause_s > 0:
                    self.mark(f"pause-{b}")
                    self.wait(schedule.pause_s)
        self.record_objects("end-of-load")
        self.mark("idle")
        self.wait(schedule.idle_s)
        self.record_objects("after-idle")
        if spec.inspect.trim_s > 0:
            self.mark("trim")
            self.trim = self.debug("POST", "/debug/trim") or {}
            if not self.trim:
                self.notes.append("the server has no POST /debug/trim; nothing was trimmed")
            self.wait(spec.inspect.trim_s)

    def debug(self, method: str, path: str, timeout_s: float = 30.0) -> dict[str, Any] | None:
        """Call one of the server's loopback-only debug routes; None if it has none."""
        answer = get_json(f"{self.server.url}{path}", timeout_s, method=method)
        if answer is not None:  # a long answer (pympler) is not a hang, even if /stats waited
            self.probe.answered_at = time.monotonic()
        return answer

    def record_objects(self, moment: str) -> None:
        """Pympler's top types by size now (opt-in: it walks every object, which takes time and
        allocates, so it runs in a phase of its own that no summary figure reads)."""
        if not self.spec.inspect.objects:
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
    load, model = spec.load, spec.load.model
    if model.name == "iterations":
        expected = load.iterations * len(load.tags)
        if stats.requests < expected:
            return [
                f"batch {stats.index} stopped at its {load.timeout_s:g} s time limit after "
                f"{stats.requests} of {expected} requests"
            ]
    elif model.paced:
        wanted = model.expected_requests(0.0, model.duration_s)
        if wanted > 0 and stats.requests < 0.9 * wanted:
            return [
                f"batch {stats.index} reached {stats.requests / wanted:.0%} of the "
                f"{model.describe()} target ({stats.requests} of {wanted:.0f} requests): "
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
    if spec.inspect.profile and (spec.target.cmd or spec.target.workers > 1):
        raise ConfigError(
            "--profile memray follows one Python process: it cannot profile a --cmd or "
            "--server-workers above 1"
        )
    resolved = allocators.resolve(spec.allocator, spec.custom_allocators)
    run_id = make_run_id(spec.allocator)
    env = build_environ(
        spec.server.settings.to_environ(), resolved.environ(), pymalloc=spec.server.pymalloc
    )
    results_dir = spec.output.results_dir
    folder = results_dir if spec.experiment else results_dir / "runs"
    storage.check_writable(folder)  # now, not after an hour of measuring
    memray = spec.inspect.profile == "memray"
    profiler = MemrayProfile(folder / f"{run_id}.memray") if memray else None
    record = ResultBuilder(spec, run_id, root=root)
    status: Status = "ok"
    detail = ""
    if spec.target.app and profiler is None:
        env[OWNER_FILE_ENV] = str(folder / f".{run_id}.malloc-owner")
    with launch(
        env,
        host=spec.server.host,
        port=spec.server.port,
        ready_timeout_s=spec.limits.ready_timeout_s,
        wrap=profiler.wrap() if profiler else (),
        stop_timeout_s=60.0 if profiler else 5.0,
        target=spec.target,
    ) as server:
        if spec.target.cmd:
            _check_loopback_only(server)
        mapped = _verify_allocator(resolved, server)
        malloc_owner = _malloc_owner(server, env.pop(OWNER_FILE_ENV, None))
        allocators.verify_malloc_owner(resolved, malloc_owner)
        record.allocator_verified(resolved, mapped, malloc_owner)
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
    profile = profiler.finish() if profiler else None
    result = record.build(
        status=status,
        detail=detail,
        notes=run.notes,
        server=server,
        env=env,
        # Read after launch() has stopped and reaped the server: a server killed at the memory
        # cap may not have been reaped yet when the run noticed the cap.
        exit_code=server.proc.returncode,
        stats=run.stats,
        sampled=Sampled(
            samples,
            probes,
            run.sampler.phases,
            decimation=run.sampler.store.stride,
            peak_rss_bytes=run.sampler.peak_rss_bytes,
            vmhwm_bytes=vmhwm,
        ),
        trim=run.trim,
        objects=run.objects,
        profile=profile,
    )
    suffix = ".json.gz" if spec.output.compress else ".json"
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
