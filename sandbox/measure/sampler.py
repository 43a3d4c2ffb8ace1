"""Memory sampling threads: RSS at the sampler rate, slower probes (USS/PSS, the allocator's
counters from the server's agents, the server's request count).

Storage is bounded: columns are typed arrays, and when a store reaches `max_rows` it halves
its resolution (pairs of rows merge, keeping the larger memory value), so a 24-hour run costs
the same few megabytes as a 24-minute one and the peak is never lost.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psutil

from sandbox.results.sampling import Columns, Phase
from sandbox.system.loopback import answers, get_json

Reduce = str  # "max" | "last" | "first"


class ColumnStore:
    """Equal-length numeric columns with bounded memory (max-preserving decimation)."""

    def __init__(self, columns: Mapping[str, tuple[str, Reduce]], max_rows: int) -> None:
        if max_rows < 2:
            raise ValueError("max_rows must be at least 2")
        self._spec = dict(columns)
        self._data = {name: array(code) for name, (code, _) in self._spec.items()}
        self._pending: dict[str, float] | None = None
        self._pending_n = 0
        self._lock = threading.Lock()
        """The sampling thread appends while a checkpoint reads the columns."""
        self.max_rows = max_rows
        self.stride = 1
        """How many raw rows each stored row stands for."""

    @property
    def names(self) -> list[str]:
        return list(self._data)

    def __len__(self) -> int:
        return len(next(iter(self._data.values())))

    def append(self, row: Mapping[str, float]) -> None:
        with self._lock:
            self._append(row)

    def _append(self, row: Mapping[str, float]) -> None:
        if self.stride == 1:
            self._store(row)
            return
        if self._pending is None:
            self._pending = dict(row)
        else:
            for name, (_, how) in self._spec.items():
                if how == "max":
                    self._pending[name] = max(self._pending[name], row[name])
                elif how == "last":
                    self._pending[name] = row[name]
        self._pending_n += 1
        if self._pending_n >= self.stride:
            self._store(self._pending)
            self._pending, self._pending_n = None, 0

    def _store(self, row: Mapping[str, float]) -> None:
        for name, col in self._data.items():
            col.append(_cast(col.typecode, row[name]))
        if len(self) >= self.max_rows:
            self._halve()

    def _halve(self) -> None:
        for name, (code, how) in self._spec.items():
            old = self._data[name]
            new = array(code)
            for i in range(0, len(old) - 1, 2):
                a, b = old[i], old[i + 1]
                new.append(max(a, b) if how == "max" else (a if how == "first" else b))
            if len(old) % 2:
                new.append(old[-1])
            self._data[name] = new
        self.stride *= 2

    def columns(self) -> Columns:
        """A copy of the columns, all of one length (safe while another thread appends)."""
        with self._lock:
            data: Columns = {name: list(col) for name, col in self._data.items()}
            if self._pending is not None:
                for name in data:
                    data[name].append(_cast(self._spec[name][0], self._pending[name]))
        return data

    def last(self, name: str) -> float | None:
        col = self._data[name]
        return col[-1] if col else None

    def add_column(self, name: str, how: tuple[str, Reduce], fill: float) -> None:
        """A new column, its earlier rows (and a row being decimated) read `fill`."""
        with self._lock:
            if name in self._data:
                return
            code = how[0]
            self._spec[name] = how
            self._data[name] = array(code, [_cast(code, fill)] * len(self))
            if self._pending is not None:
                self._pending[name] = fill


def _cast(code: str, value: float) -> Any:
    return float(value) if code == "d" else int(value)


def _proc_kib(pid: int, name: str, key: str) -> int | None:
    """The `key:` line of /proc/PID/<name> (a size in kB), in bytes; None when unreadable."""
    try:
        with open(f"/proc/{pid}/{name}") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def read_pss(pid: int) -> int | None:
    """Proportional set size from /proc/PID/smaps_rollup (shared pages split among their
    sharers, so a sum over processes counts each page once), in bytes; None when unreadable."""
    return _proc_kib(pid, "smaps_rollup", "Pss:")


class ProcessTree:
    """A server's process and its descendants (uvicorn --workers, a user's command).

    Workers are numbered w1, w2, ... in order of appearance; the list is refreshed at most
    every `refresh_s` (listing children scans /proc).
    """

    def __init__(self, pid: int, refresh_s: float = 1.0) -> None:
        self.root = psutil.Process(pid)
        self.refresh_s = refresh_s
        self._children: list[psutil.Process] = []
        self._listed_at = -1e9
        self.labels: dict[int, str] = {}
        self.vanished: list[str] = []
        """Processes of the tree that exited while it was watched, as `w1 (pid 123)`."""

    def processes(self) -> list[psutil.Process]:
        now = time.monotonic()
        if now - self._listed_at >= self.refresh_s:
            try:
                self._children = self.root.children(recursive=True)
            except psutil.Error:
                self._children = []
            self._listed_at = now
            alive = {child.pid for child in self._children}
            for pid, name in self.labels.items():
                entry = f"{name} (pid {pid})"
                if pid not in alive and entry not in self.vanished:
                    self.vanished.append(entry)
            for child in self._children:
                if child.pid not in self.labels:
                    self.labels[child.pid] = self._name(child)
        return [self.root, *self._children]

    def _name(self, proc: psutil.Process) -> str:
        """`w1`, `w2`, ... for workers; multiprocessing's helper process is `tracker`."""
        try:
            if "multiprocessing.resource_tracker" in " ".join(proc.cmdline()):
                return "tracker"
        except psutil.Error:
            pass
        workers = sum(1 for name in self.labels.values() if name.startswith("w"))
        return f"w{workers + 1}"

    def label(self, proc: psutil.Process) -> str:
        return "main" if proc.pid == self.root.pid else self.labels.get(proc.pid, "other")


def read_vmhwm(pid: int) -> int | None:
    """The kernel's peak RSS for `pid` (VmHWM), in bytes; None when unreadable."""
    return _proc_kib(pid, "status", "VmHWM:")


@dataclass
class Live:
    """The latest readings, for the progress display (written by the threads, read by the UI)."""

    rss_bytes: int = 0
    requests_done: int = 0
    rps: float = 0.0


class _PollingThread(threading.Thread):
    def __init__(self, name: str, interval_s: float, t0: float) -> None:
        super().__init__(name=name, daemon=True)
        self.interval_s = interval_s
        self.t0 = t0
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        """Set to tick at once (`tick_now`) or to stop."""
        self._ticks = threading.Condition()
        self._ticks_started = 0
        self._ticks_finished = 0
        self._forced = False
        """A `tick_now` asked for the coming tick (which then wants figures taken for it)."""
        self._tick_forced = False
        """The tick under way was asked for by `tick_now`."""
        self.error: BaseException | None = None
        self.stuck_s: float | None = None
        """Set by `halt` when the thread did not stop within that many seconds."""

    def run(self) -> None:
        next_at = time.monotonic()
        try:
            while not self._stop_event.is_set():
                with self._ticks:
                    self._ticks_started += 1
                    self._tick_forced, self._forced = self._forced, False
                try:
                    if not self.tick(time.monotonic() - self.t0):
                        return
                finally:
                    with self._ticks:
                        self._ticks_finished += 1
                        self._ticks.notify_all()
                next_at += self.interval_s
                delay = next_at - time.monotonic()
                if delay < 0:  # fell behind (machine busy): skip, don't burst
                    next_at = time.monotonic()
                    delay = 0
                if self._wake.wait(delay):
                    self._wake.clear()
                    next_at = time.monotonic()  # the schedule starts again from this tick
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def tick_now(self, timeout_s: float) -> bool:
        """Take a reading that starts after this call, and wait (up to `timeout_s`) until it is
        done: a phase's last figures, rather than the last periodic tick's, up to an interval
        old. False when none came in time (the thread has stopped, or the tick is slow)."""
        if not self.is_alive():
            return False
        with self._ticks:
            target = self._ticks_started + 1
            self._forced = True
            self._wake.set()
            return (
                self._ticks.wait_for(
                    lambda: self._ticks_finished >= target or not self.is_alive(), timeout_s
                )
                and self._ticks_finished >= target
            )

    def tick(self, t: float) -> bool:
        raise NotImplementedError

    def _take_forced(self) -> bool:
        """True in the tick a `tick_now` asked for (one that started after the call)."""
        return self._tick_forced

    def halt(self, timeout_s: float | None = None) -> None:
        """Stop the thread and wait for it (5 s, or three intervals); `stuck_s` says when that
        wait ran out. Its `error` is then whatever it raised."""
        self._stop_event.set()
        self._wake.set()
        wait_s = max(5.0, self.interval_s * 3) if timeout_s is None else timeout_s
        if self.is_alive():
            self.join(timeout=wait_s)
        if self.is_alive():
            self.stuck_s = wait_s


class RssSampler(_PollingThread):
    """Samples the server's RSS and thread count; notices death and the memory cap."""

    def __init__(
        self,
        pid: int,
        interval_s: float,
        t0: float,
        *,
        max_rows: int = 200_000,
        max_rss_bytes: int | None = None,
        on_cap: Callable[[int], None] | None = None,
        live: Live | None = None,
        tree: bool = False,
    ) -> None:
        super().__init__("rss-sampler", interval_s, t0)
        self.pid = pid
        self.process = psutil.Process(pid)
        self.tree = ProcessTree(pid) if tree else None
        """Several server processes: RSS and threads are sums, and PSS (sum) is sampled too."""
        columns: dict[str, tuple[str, Reduce]] = {
            "t_s": ("d", "first"),
            "rss_bytes": ("q", "max"),
            "threads": ("l", "max"),
        }
        if tree:
            columns |= {"pss_bytes": ("q", "max"), "processes": ("l", "max")}
        self.store = ColumnStore(columns, max_rows)
        self.max_rss_bytes = max_rss_bytes
        self.on_cap = on_cap
        self.live = live or Live()
        self.peak_rss_bytes = 0
        self.gone = threading.Event()
        """Set when the server process disappeared."""
        self.cap_hit = threading.Event()
        """Set when RSS passed max_rss_bytes."""
        self.phases: list[Phase] = []
        self._open_phase: tuple[str, float] | None = None

    def _read(self, proc: psutil.Process) -> tuple[int, int]:
        with proc.oneshot():  # one read of each /proc file per tick
            rss = proc.memory_info().rss
            threads = proc.num_threads()
            zombie = proc.status() == psutil.STATUS_ZOMBIE
        if zombie:
            raise psutil.ZombieProcess(proc.pid)
        return rss, threads

    def tick(self, t: float) -> bool:
        try:
            rss, threads = self._read(self.process)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            self.gone.set()
            return False
        row: dict[str, float] = {"t_s": t}
        if self.tree is not None:
            pss = read_pss(self.pid) or 0
            procs = self.tree.processes()
            for proc in procs[1:]:
                try:
                    r, n = self._read(proc)
                except psutil.Error:
                    continue  # a worker that just exited: the supervisor notices, not us
                rss, threads, pss = rss + r, threads + n, pss + (read_pss(proc.pid) or 0)
            row |= {"pss_bytes": pss, "processes": len(procs)}
        self.store.append({**row, "rss_bytes": rss, "threads": threads})
        self.live.rss_bytes = rss
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
        if self.max_rss_bytes and rss > self.max_rss_bytes and not self.cap_hit.is_set():
            # Announce first: the main thread checks cap_hit before it looks for a dead server,
            # so the kill below is never mistaken for the server dying on its own. The exit
            # code is read after the server has been reaped, so it is there either way.
            self.cap_hit.set()
            if self.on_cap:
                self.on_cap(rss)
        return True

    def mark(self, name: str) -> None:
        """Close the current phase (if any) and open `name` now."""
        now = time.monotonic() - self.t0
        if self._open_phase:
            self.phases.append(Phase(self._open_phase[0], self._open_phase[1], now))
        self._open_phase = (name, now)

    def phases_so_far(self) -> list[Phase]:
        """The phases, the open one closed now (for a checkpoint)."""
        phases = list(self.phases)
        if self._open_phase:
            phases.append(Phase(*self._open_phase, time.monotonic() - self.t0))
        return phases

    def stop(self) -> Columns:
        """Stop sampling, close the open phase, and return the columns."""
        self.mark("end")
        self._open_phase = None
        self.halt()
        return self.store.columns()


# Probe columns: name -> (array type, how decimation merges two rows).
PROBE_COLUMNS: dict[str, tuple[str, Reduce]] = {
    "t_s": ("d", "first"),
    "requests_done": ("q", "last"),
    "uss_bytes": ("q", "max"),
    "pss_bytes": ("q", "max"),
    "alloc_in_use_bytes": ("q", "max"),
    "alloc_held_bytes": ("q", "max"),
    "alloc_active_bytes": ("q", "max"),
    "py_allocated_blocks": ("q", "max"),
    "pymalloc_used_bytes": ("q", "max"),
    "pymalloc_free_bytes": ("q", "max"),
    "pymalloc_arena_bytes": ("q", "max"),
    "pymalloc_blocks": ("q", "max"),
}
PER_PROCESS_PREFIXES = (
    "rss_bytes_",
    "pss_bytes_",
    "alloc_in_use_bytes_",
    "alloc_held_bytes_",
    "pymalloc_used_bytes_",
    "pymalloc_free_bytes_",
    "pymalloc_arena_bytes_",
)
"""Columns of one process each (`rss_bytes_w1`, `alloc_held_bytes_main`, ...)."""


class AllocatorCounters(Protocol):
    """The server's allocator counters at one probe (`agents.AgentProbe`)."""

    def read(
        self, processes: Sequence[tuple[str, int]], *, per_process: bool, fresh: bool = False
    ) -> dict[str, float | None]: ...


class ProbePoller(_PollingThread):
    """About once a second: USS/PSS (a full smaps read), the server's request counter and, from
    the agent in each server process, what its allocator holds and has handed out.

    The columns are fixed by the first tick: a counter nobody gives (mimalloc has no in-use
    count; a server with no agent has none at all) is left out, not filled with zeros. After
    that, a per-process column of a process that has exited reads 0, and one of a process first
    seen later (a late or a replacement worker) starts then, reading 0 before; a value not
    answered this tick is carried (see `sandbox.measure.agents` for the allocator counters' rules).
    """

    def __init__(
        self,
        pid: int,
        base_url: str,
        interval_s: float,
        t0: float,
        live: Live,
        *,
        tree: ProcessTree | None = None,
        ask_server: bool = True,
        counters: AllocatorCounters | None = None,
        count_requests: Callable[[], int] | None = None,
    ) -> None:
        super().__init__("probe-poller", interval_s, t0)
        self.pid = pid
        self.process = psutil.Process(pid)
        self.tree = tree
        """Several processes: USS/PSS are sums, and each process gets its own columns."""
        self.ask_server = ask_server
        """Ask the server's GET /stats for its request count (False when any of several
        workers would answer, or the server has none)."""
        self.counters = counters
        """The agents' allocator counters; None: the server has no agent."""
        self.count_requests = count_requests
        """Requests done so far as Locust counts them, for the progress line when the server
        does not count them itself (not stored: the column is the server's own count)."""
        self.base_url = base_url
        self.live = live
        self.store: ColumnStore | None = None
        self.answered_at = time.monotonic()
        """When the server last answered GET /stats (monotonic; start: when polling began)."""
        self._prev: tuple[float, int] | None = None

    def _per_process(self) -> tuple[dict[str, float | None], list[tuple[str, int]]]:
        """USS and PSS summed over the tree, plus RSS and PSS of each process (`_w1`, ...);
        and the processes read, by label."""
        assert self.tree is not None
        row: dict[str, float | None] = {"uss_bytes": 0, "pss_bytes": 0}
        read: list[tuple[str, int]] = []
        for proc in self.tree.processes():
            try:
                full = proc.memory_full_info()
            except psutil.Error:
                continue
            label = self.tree.label(proc)
            read.append((label, proc.pid))
            row["uss_bytes"] = (row["uss_bytes"] or 0) + full.uss
            row["pss_bytes"] = (row["pss_bytes"] or 0) + full.pss
            row[f"rss_bytes_{label}"] = full.rss
            row[f"pss_bytes_{label}"] = full.pss
        return row, read

    def tick(self, t: float) -> bool:
        try:
            if self.tree is None:
                full = self.process.memory_full_info()
                mem: dict[str, float | None] = {"uss_bytes": full.uss, "pss_bytes": full.pss}
                processes = [("main", self.pid)]
            elif self.process.status() == psutil.STATUS_ZOMBIE:
                return False
            else:  # the root is read with the others, once
                mem, processes = self._per_process()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return False
        timeout = max(0.5, self.interval_s)
        stats: dict[str, Any] = {}
        if self.ask_server:
            stats = get_json(f"{self.base_url}/stats", timeout) or {}
        # Alive: /stats answered, or (several workers, or a user's app without /stats) any HTTP
        # answer at all, a 404 included. Not an agent's answer: it runs beside the server's own
        # threads, and answers while they hang.
        if stats or answers(f"{self.base_url}/stats", timeout):
            self.answered_at = time.monotonic()
        row: dict[str, float | None] = {
            "t_s": t,
            "requests_done": stats.get("requests_done", stats.get("requests")),
            **mem,
        }
        if self.counters is not None:
            row |= self.counters.read(
                processes, per_process=self.tree is not None, fresh=self._take_forced()
            )
        if self.store is None:
            spec = {
                **PROBE_COLUMNS,
                **{n: ("q", "max") for n in row if n.startswith(PER_PROCESS_PREFIXES)},
            }
            # A server without /stats (a user's app) has no request column: all zeros would
            # read as a count; the progress line then shows Locust's.
            names = [n for n in spec if row.get(n) is not None]
            self.store = ColumnStore({n: spec[n] for n in names}, max_rows=50_000)
        for name in row:
            # A process that appeared, or whose agent first answered, after the first probe
            # (a late or replacement worker): its columns start now and read 0 before, as they
            # would after it exits.
            if name.startswith(PER_PROCESS_PREFIXES) and row[name] is not None:
                self.store.add_column(name, ("q", "max"), fill=0)
        for name in self.store.names:
            if row.get(name) is not None:
                continue
            if name.startswith(PER_PROCESS_PREFIXES):
                row[name] = 0  # that process has exited (or lost its agent)
            else:  # not answered this tick: carry the last value
                row[name] = self.store.last(name) or 0
        self.store.append({k: v for k, v in row.items() if v is not None})
        self._count(t, row)
        return True

    def _count(self, t: float, row: dict[str, float | None]) -> None:
        """Requests done and their rate, for the progress line: the server's own count, else
        Locust's, else -1 (nobody counts them)."""
        assert self.store is not None
        if "requests_done" in self.store.names:
            done = int(row["requests_done"] or 0)
        elif self.count_requests is not None:
            done = self.count_requests()
        else:
            self.live.requests_done = -1
            return
        if self._prev is not None and t > self._prev[0]:
            self.live.rps = max(0.0, (done - self._prev[1]) / (t - self._prev[0]))
        self._prev = (t, done)
        self.live.requests_done = done

    def stop(self) -> Columns:
        self.halt()
        return self.store.columns() if self.store else {}
