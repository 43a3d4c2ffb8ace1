"""One run, start to finish: launch under an allocator, verify it, sample, drive batches, write.

No click here: progress goes to a callback, faults become the result's status.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from sandbox.allocators import host_cores
from sandbox.allocators import registry as allocators
from sandbox.config.run_spec import RunSpec
from sandbox.config.server_settings import OWNER_FILE_ENV
from sandbox.config.settings import REPO_ROOT
from sandbox.errors import ConfigError, LoadError, ServerError
from sandbox.load import batch
from sandbox.load.live_count import LocustCount
from sandbox.load.stats import BatchStats
from sandbox.measure import agents, inject
from sandbox.measure.agent_client import AgentClient
from sandbox.measure.checkpointer import Checkpointer
from sandbox.measure.launch import ServerProcess, build_environ, launch
from sandbox.measure.loop import ProgressCallback, RunLoop
from sandbox.measure.profiling import MemrayProfile
from sandbox.measure.record import AgentsSeen, ResultBuilder, Sampled
from sandbox.measure.sampler import Live, ProbePoller, ProcessTree, RssSampler, read_vmhwm
from sandbox.measure.server_client import ServerClient
from sandbox.measure.watchdog import ServerGroup, Stopped, Watchdog
from sandbox.results import storage
from sandbox.results.model import RunResult, Status
from sandbox.results.releases import CollectionInfo, TrimInfo
from sandbox.results.sampling import Columns


def make_run_id(allocator: str, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{allocator}-{secrets.token_hex(2)}"


AGENT_WAIT_S = 5.0
"""How long, once the server answers, to wait for an agent in each of its Python processes."""
TRIM_TIMEOUT_S = 30.0
"""How long one process's trim may take (malloc_trim walks every arena)."""


def probe_timeout_s(probe_interval_s: float) -> float:
    """One agent's time to answer a probe's snapshot: half the probe interval (the probe's
    whole budget for agents, which the probe never overruns: a later process gets what is
    left), between 0.05 s and 0.5 s, so a slow agent cannot hold up the probe that watches for
    a hung server. Not less: under load the agent's thread waits for the GIL behind the server's
    threads (the stair-stepper's 40 threads at 5 ms each), and at a quarter of a second about
    one probe in 25 was missed in 3 of 10 quick.yml runs."""
    return min(0.5, max(0.05, probe_interval_s / 2))


class _Run:
    """One run under way: its sampling threads, watchdog and loop, and what it has gathered."""

    def __init__(
        self,
        spec: RunSpec,
        server: ServerProcess,
        on_progress: ProgressCallback | None,
        agent_dir: Path | None = None,
        processes: int = 1,
    ):
        self.spec = spec
        t0 = time.monotonic()
        live = Live()
        group = ServerGroup(server.proc)
        # Several processes (uvicorn workers, a user's command): sample the whole tree.
        tree = spec.target.workers > 1 or spec.target.cmd is not None
        self.sampler = RssSampler(
            server.pid,
            spec.sampler.interval_s,
            t0,
            max_rss_bytes=spec.limits.max_rss_bytes,
            on_cap=lambda _rss: group.kill(),
            live=live,
            tree=tree,
        )
        interval = spec.sampler.probe_interval_s
        self.agents = None if agent_dir is None else AgentClient(agent_dir, TRIM_TIMEOUT_S)
        """Every process's agent, for the trim phase; None: the agent was left out."""
        self.agent_probe = (
            None
            if agent_dir is None
            else agents.AgentProbe(
                AgentClient(agent_dir),
                budget_s=interval / 2,
                timeout_s=probe_timeout_s(interval),
            )
        )
        self.count = LocustCount()
        self.probe = ProbePoller(
            server.pid,
            server.url,
            interval,
            t0,
            live,
            tree=ProcessTree(server.pid) if tree else None,
            # With several workers (ours, or a command's), any one of them answers /stats:
            # their counts would be mixed; Locust's count shows instead.
            ask_server=spec.target.workers == 1 and processes == 1,
            counters=self.agent_probe,
            count_requests=self.count.total,
        )
        self.watchdog = Watchdog(self.sampler, self.probe, group, limits=spec.limits)
        self.loop = RunLoop(
            self.sampler, self.watchdog, live, spec.schedule.batches, on_progress, t0=t0
        )
        self.client = ServerClient(server.url, on_answer=self._answered)
        self.host_url = server.url
        self.supervisor = batch.Supervisor(self.loop.check, self.loop.now, count=self.count)
        self.stats: list[BatchStats] = []
        self.after_batch: Callable[[], None] = lambda: None
        """Called when a batch's statistics are in (the runner checkpoints them)."""
        self.notes: list[str] = []
        self.trim: TrimInfo | None = None
        self.collection: CollectionInfo | None = None
        self.objects: dict[str, Any] = {}

    def _answered(self) -> None:
        self.probe.answered_at = time.monotonic()

    def start_sampling(self) -> None:
        self.sampler.start()
        self.probe.start()

    def sampled_so_far(self, pid: int) -> Sampled:
        """What the threads have recorded up to now, for a checkpoint."""
        return Sampled(
            self.sampler.store.columns(),
            self.probe.store.columns() if self.probe.store else {},
            self.sampler.phases_so_far(),
            decimation=self.sampler.store.stride,
            peak_rss_bytes=self.sampler.peak_rss_bytes,
            vmhwm_bytes=read_vmhwm(pid),
        )

    def stop_sampling(self, pid: int, *, ok: bool) -> tuple[int | None, Columns, Columns]:
        """The kernel's peak RSS, the samples and the probes; notes what the threads did after
        the last check, and server processes that vanished from a run that is otherwise ok."""
        vmhwm = read_vmhwm(pid)
        samples = self.sampler.stop()
        probes = self.probe.stop()
        self.notes.extend(self.watchdog.after_stop())
        if self.probe.tree is not None and self.probe.tree.vanished and ok:
            self.notes.append(
                "server processes exited during the run (their supervisor may have replaced "
                f"them; see the server log): {', '.join(self.probe.tree.vanished)}"
            )
        seen = self.agents_seen().processes
        self.notes.extend(agents.agent_notes(seen, injected=self.injected, ok=ok))
        return vmhwm, samples, probes

    @property
    def injected(self) -> bool:
        return self.agent_probe is not None

    def agents_seen(self) -> AgentsSeen:
        seen = self.agent_probe.processes() if self.agent_probe else []
        return AgentsSeen(injected=self.injected, processes=seen)

    def drive(self) -> None:
        """baseline, the batches (with their pauses), idle, trim."""
        schedule = self.spec.schedule
        self.loop.hold("baseline", schedule.baseline_s)
        self.run_batches()
        self.record_objects("end-of-load")
        self.loop.hold("idle", schedule.idle_s)
        # After-idle figures from a reading finished before the trim phase: a tick still in
        # flight when a collection or a trim starts would report what they freed as idle's.
        self.probe.tick_now(timeout_s=2 * self.spec.sampler.probe_interval_s + 1)
        self.record_objects("after-idle")
        if self.spec.inspect.trim_s > 0:
            self.trim_memory()

    def run_batches(self) -> None:
        load, schedule = self.spec.load, self.spec.schedule
        with tempfile.TemporaryDirectory(prefix="sandbox-run-") as tmp:
            for b in range(1, schedule.batches + 1):
                self.loop.mark(f"batch-{b}", batch=b)
                stats = self.supervisor.run(load, self.host_url, Path(tmp), b)
                # The stair read takes each batch's figures from the last probe before its end:
                # one now, not up to a probe interval before the last requests finished.
                self.probe.tick_now(timeout_s=2 * self.spec.sampler.probe_interval_s + 1)
                self.stats.append(stats)
                self.notes.extend(batch.shortfall(load, stats))
                self.after_batch()
                if b < schedule.batches and schedule.pause_s > 0:
                    self.loop.hold(f"pause-{b}", schedule.pause_s)

    def trim_memory(self) -> None:
        """Ask every process's agent for its allocator's free memory back, then sample for
        trim_s. Skipped (no trim phase) when no process has an agent to ask. With
        --collect-garbage, a full collection in each process comes first, so that the trim
        then returns what the collection freed."""
        targets = self.agent_probe.answering() if self.agent_probe else []
        if self.agents is None or not targets:
            self.notes.append("nothing was trimmed: no process of the server had an agent")
            return
        self.loop.mark("trim")
        if self.spec.inspect.collect_garbage:
            self.collection, failed = agents.collect_each(self.agents, targets)
            self.notes.extend(failed)
            self._answered()  # a long collection is not a hang
        self.trim, failed = agents.trim_each(self.agents, targets)
        self.notes.extend(failed)
        self._answered()  # a long trim is not a hang
        self.loop.wait(self.spec.inspect.trim_s)

    def record_objects(self, moment: str) -> None:
        """Pympler's top types by size now (opt-in: it walks every object, which takes time and
        allocates, so it runs in a phase of its own that no summary figure reads)."""
        if not self.spec.inspect.objects:
            return
        self.loop.mark(f"objects-{moment}")
        self.loop.check()
        answer = self.client.objects()
        if answer is None:
            self.notes.append(f"no object summary at {moment}: GET /debug/objects failed")
        else:
            self.objects[moment] = {**answer, "t_s": round(self.loop.now(), 3)}


def run_once(
    spec: RunSpec,
    *,
    on_progress: ProgressCallback | None = None,
    on_notice: Callable[[str], None] | None = None,
    root: Path = REPO_ROOT,
) -> tuple[RunResult, Path]:
    """Run the whole pipeline and write the result; faults end in a result marked by status.
    `on_notice` hears, as the run starts, what limits its figures (no agent in the server).

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
    allocator_env = resolved.environ()
    allocator_env |= host_cores.environ(resolved.path, allocator_env, spec.server.host_cores)
    env = build_environ(
        spec.server.settings.to_environ(), allocator_env, pymalloc=spec.server.pymalloc
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
    with contextlib.ExitStack() as stack:
        agent_dir = None if agents.agent_disabled() else stack.enter_context(inject.agent_folder())
        if agent_dir is not None:
            env = inject.agent_environ(agent_dir, env)
        server = stack.enter_context(
            launch(
                env,
                host=spec.server.host,
                port=spec.server.port,
                ready_timeout_s=spec.limits.ready_timeout_s,
                wrap=profiler.wrap() if profiler else (),
                stop_timeout_s=60.0 if profiler else 5.0,
                target=spec.target,
                expose=spec.server.expose,
            )
        )
        mapped, malloc_owner = _verify(spec, resolved, server, env.pop(OWNER_FILE_ENV, None))
        record.allocator_verified(resolved, mapped, malloc_owner)
        processes = _await_agents(server, agent_dir, on_notice)
        run = _Run(spec, server, on_progress, agent_dir, processes)
        checkpoint = Checkpointer(folder, run_id, lambda: _partial(record, run, server, env))
        run.loop.after_check = checkpoint.maybe
        run.after_batch = checkpoint.soon
        run.start_sampling()
        try:
            try:
                run.drive()  # baseline, batches, idle, trim
            except KeyboardInterrupt:
                status, detail = "interrupted", f"interrupted during {run.loop.phase}"
            except Stopped as stop:
                status, detail = stop.status, stop.detail
            except LoadError as exc:
                status, detail = "failed", str(exc)
            finally:
                vmhwm, samples, probes = run.stop_sampling(server.pid, ok=status == "ok")
        except BaseException as exc:  # a second Ctrl-C while stopping, or a bug
            _abandon(checkpoint, exc)
            raise
    if checkpoint.failure:
        run.notes.append(checkpoint.failure)
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
        collection=run.collection,
        objects=run.objects,
        profile=profile,
        agents=run.agents_seen(),
    )
    suffix = ".json.gz" if spec.output.compress else ".json"
    try:
        path = storage.save(result, folder / f"{run_id}{suffix}")
    except storage.ResultWriteError as exc:
        if exc.written_to is not None:  # the fallback copy holds the whole run
            checkpoint.finish()
        raise
    checkpoint.finish()  # the final result replaces the checkpoint
    return result, path


def _partial(
    record: ResultBuilder, run: _Run, server: ServerProcess, env: dict[str, str]
) -> RunResult:
    """The run so far, as a checkpoint (status `running`)."""
    return record.build(
        status="running",
        detail="",
        notes=run.notes,
        server=server,
        env=env,
        exit_code=None,
        stats=run.stats,
        sampled=run.sampled_so_far(server.pid),
        trim=run.trim,
        collection=run.collection,
        objects=run.objects,
        profile=None,
        agents=run.agents_seen(),
    )


def _abandon(checkpoint: Checkpointer, exc: BaseException) -> None:
    """The run ends without a result while the harness lives on: say so in the checkpoint."""
    if isinstance(exc, KeyboardInterrupt):
        checkpoint.abandon("interrupted", "interrupted while stopping; this is its last checkpoint")
    else:
        checkpoint.abandon("failed", f"the harness failed: {exc!r}; this is its last checkpoint")


def _await_agents(
    server: ServerProcess, agent_dir: Path | None, on_notice: Callable[[str], None] | None
) -> int:
    """Wait for the agent in each Python process of the server; say so now if none has one.
    Returns how many processes the server has."""
    tree = ProcessTree(server.pid, refresh_s=0.0)

    def processes() -> list[tuple[str, int]]:
        return [(tree.label(p), p.pid) for p in tree.processes()]

    if agent_dir is None:
        if on_notice:
            on_notice(f"agent left out ({agents.NO_AGENT_ENV}=1): RSS only")
        return len(processes())
    client = AgentClient(agent_dir, timeout_s=1.0)
    if not agents.wait_for_agents(client.hello, processes, AGENT_WAIT_S) and on_notice:
        on_notice(
            "no process of the server has an agent (not Python, or python -I, -E or -S): "
            "no allocator counters and no trim, RSS only"
        )
    return len(processes())


def _verify(
    spec: RunSpec,
    resolved: allocators.ResolvedAllocator,
    server: ServerProcess,
    owner_file: str | None,
) -> tuple[list[str], str | None]:
    """Before anything is measured: a command's server listens on loopback only, the allocator
    is mapped in every server process, and it is the one that serves `malloc`. Returns the
    mapped libraries and the malloc owner."""
    if spec.target.cmd:
        _check_loopback_only(server)
    mapped = _verify_allocator(resolved, server)
    malloc_owner = _malloc_owner(server, owner_file)
    allocators.verify_malloc_owner(resolved, malloc_owner)
    return mapped, malloc_owner


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
