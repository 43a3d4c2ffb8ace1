"""The injected agent in real servers: one agent per process of uvicorn --workers 2 (spawned) and
of gunicorn -w 2 (forked), under glibc and jemalloc; 64 MiB held through malloc read back by
the agent under glibc, jemalloc and tcmalloc; the agent in a separate virtualenv that has only
the service's own dependencies."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from sandbox.config.run_spec import Target
from sandbox.measure import inject
from sandbox.measure.agent_client import AgentClient, Hello, MemorySnapshot
from sandbox.measure.launch import ServerProcess, build_environ, launch
from sandbox.units import MIB
from tests.integration.conftest import post_json, resolve_or_skip
from tests.integration.harness import REPO
from tests.unit.agent.test_standalone import find_python

pytestmark = pytest.mark.e2e

HOLD_MIB = 64
APP = "examples.cache_service.app:app"
HOLD_SERVICE = Path(__file__).parent / "services" / "hold_service.py"
RELEASE_CALLS = {"glibc": "malloc_trim(0)", "jemalloc": 'mallctl("arena.4096.purge")'}


@dataclass(frozen=True)
class Served:
    """A running server with the agent injected."""

    server: ServerProcess
    client: AgentClient
    library: str | None
    """The preloaded allocator's path; None for glibc."""
    left: list[int] = field(default_factory=list)
    """Pids whose socket was still there once the server stopped (filled in then): those
    killed by a signal, which runs no atexit."""


@contextlib.contextmanager
def serve(cmd: str, allocator: str, cwd: Path = REPO) -> Iterator[Served]:
    """`cmd` under `allocator`, with the agent injected, ready on /health."""
    chosen = resolve_or_skip(allocator)
    with inject.agent_folder() as folder:
        env = inject.agent_environ(folder, build_environ({}, chosen.environ()))
        target = Target(cmd=cmd, ready_url="http://{host}:{port}/health", cwd=cwd)
        with launch(env, target=target, ready_timeout_s=60) as server:
            served = Served(server, AgentClient(folder), chosen.path)
            yield served
        served.left.extend(served.client.sockets())


def describe(pid: int) -> str:
    try:
        process = psutil.Process(pid)
        return f"{pid} ({process.status()}: {' '.join(process.cmdline())[:120]})"
    except psutil.Error as exc:
        return f"{pid} ({type(exc).__name__})"


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(served: Served, pids: list[int], timeout_s: float = 20.0) -> dict[int, Hello]:
    """Each pid's hello, once all of them answer; a process that exits meanwhile is left out
    (a loaded machine can make uvicorn's supervisor replace a worker slow to answer its ping)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pids = [pid for pid in pids if alive(pid)]
        hellos = {pid: served.client.hello(pid) for pid in pids}
        ready = {pid: h for pid, h in hellos.items() if h is not None}
        if len(ready) == len(pids):
            return ready
        if time.monotonic() > deadline:
            missing = ", ".join(describe(pid) for pid in sorted(set(pids) - set(ready)))
            pytest.fail(
                f"no agent in {timeout_s:g} s for {missing}; sockets for "
                f"{sorted(served.client.sockets())}; server log: {served.server.log_tail(20)}"
            )
        time.sleep(0.1)


def workers(server: ServerProcess, marker: str, count: int, timeout_s: float = 30.0) -> list[int]:
    """The `count` child processes of the server whose command line holds `marker`."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = []
        for child in psutil.Process(server.pid).children():
            with contextlib.suppress(psutil.Error):
                if alive(child.pid) and any(marker in part for part in child.cmdline()):
                    found.append(child.pid)
        if len(found) == count:
            return sorted(found)
        assert time.monotonic() < deadline, f"{len(found)} workers, not {count}: {found}"
        time.sleep(0.1)


def tree(server: ServerProcess) -> list[int]:
    root = psutil.Process(server.pid)
    return sorted([root.pid, *(p.pid for p in root.children(recursive=True))])


def check_counters(snap: MemorySnapshot, pid: int, allocator: str, library: str | None) -> None:
    assert snap.pid == pid
    assert snap.allocator == allocator
    if library is None:
        assert snap.library is None
    else:
        assert snap.library is not None
        assert os.path.realpath(snap.library) == os.path.realpath(library)
    assert snap.in_use_bytes is not None and snap.held_bytes is not None
    assert 0 < snap.in_use_bytes <= snap.held_bytes < snap.rss_bytes


def put_items(served: Served, count: int) -> None:
    body = b'{"name": "x", "values": [1, 2, 3, 4, 5, 6, 7, 8]}'
    for i in range(count):
        assert post_json(f"{served.server.url}/items/k{i}", body) == 201


@pytest.mark.parametrize("allocator", ["glibc", "jemalloc"])
def test_uvicorn_workers_each_have_an_agent(allocator: str) -> None:
    cmd = f"{sys.executable} -m uvicorn {APP} --host {{host}} --port {{port}} --workers 2"
    with serve(cmd, allocator) as served:
        spawned = workers(served.server, "spawn_main", 2)
        everyone = tree(served.server)  # the supervisor, multiprocessing's tracker, the workers
        hellos = wait_for(served, everyone)
        for pid, hello in hellos.items():
            assert (hello.pid, hello.ppid) == (pid, psutil.Process(pid).ppid())
        assert set(hellos) <= set(served.client.sockets())  # one socket per process
        put_items(served, 50)
        for pid in workers(served.server, "spawn_main", 2):  # the same, unless one was replaced
            snap = served.client.snapshot(pid)
            assert snap is not None
            check_counters(snap, pid, allocator, served.library)
            trim = served.client.trim(pid)
            assert trim is not None and trim.called == RELEASE_CALLS[allocator]
            assert trim.released.rss_bytes == trim.before.rss_bytes - trim.after.rss_bytes
        print(f"\n{allocator}: uvicorn pids {everyone}, workers {spawned}")
    # uvicorn's workers re-raise SIGTERM after their graceful shutdown, so they die of it and
    # atexit never runs: their sockets stay, and read as no agent, not as an error.
    assert all(served.client.hello(pid) is None for pid in served.left)


@pytest.mark.parametrize("allocator", ["glibc", "jemalloc"])
def test_gunicorn_forked_workers_each_have_an_agent(allocator: str) -> None:
    cmd = (
        f"{sys.executable} -m gunicorn -k uvicorn.workers.UvicornWorker -w 2 "
        f"--bind {{host}}:{{port}} {APP}"
    )
    with serve(cmd, allocator) as served:
        arbiter = served.server.pid
        forked = workers(served.server, "gunicorn", 2)
        hellos = wait_for(served, [arbiter, *forked])
        for pid, hello in hellos.items():  # forked, not exec'd: the at-fork hook started them
            if pid != arbiter:
                assert hello.ppid == arbiter
                assert hello.argv == hellos[arbiter].argv
        assert set(hellos) <= set(served.client.sockets())
        put_items(served, 50)
        for pid in workers(served.server, "gunicorn", 2):
            snap = served.client.snapshot(pid)
            assert snap is not None
            check_counters(snap, pid, allocator, served.library)
        print(f"\n{allocator}: gunicorn arbiter {arbiter}, workers {forked}")
    assert all(served.client.hello(pid) is None for pid in served.left)


def post(served: Served, path: str) -> None:
    request = urllib.request.Request(f"{served.server.url}{path}", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status in (200, 201)


@pytest.mark.parametrize("allocator", ["glibc", "jemalloc", "tcmalloc"])
def test_64_mib_held_through_malloc_reads_as_64_mib_in_use(allocator: str) -> None:
    """mimalloc is not here: release builds count no in-use bytes, and its held figure is
    committed memory, which does not follow one allocation (the first 64 MiB added 43 MiB,
    partly inside the segment it commits at start, the next ones 68 MiB each)."""
    cmd = f"{sys.executable} {HOLD_SERVICE} --host {{host}} --port {{port}}"
    with serve(cmd, allocator) as served:
        pid = served.server.pid
        wait_for(served, [pid])
        before = served.client.snapshot(pid)
        post(served, f"/hold?mib={HOLD_MIB}")
        held = served.client.snapshot(pid)
        post(served, "/free")
        freed = served.client.snapshot(pid)
    assert before is not None and held is not None and freed is not None
    assert before.in_use_bytes is not None and held.in_use_bytes is not None
    assert freed.in_use_bytes is not None
    assert held.rss_bytes - before.rss_bytes >= 0.95 * HOLD_MIB * MIB  # every page written
    rise = held.in_use_bytes - before.in_use_bytes
    assert rise == pytest.approx(HOLD_MIB * MIB, rel=0.05)
    assert abs(freed.in_use_bytes - before.in_use_bytes) <= 0.05 * HOLD_MIB * MIB
    print(f"\n{allocator}: +{rise / MIB:.2f} MiB in use through the agent for {HOLD_MIB} MiB held")


# pip's messages when it cannot reach the package index.
OFFLINE = (
    "NewConnectionError",
    "Network is unreachable",
    "Temporary failure in name resolution",
    "ConnectTimeoutError",
    "No matching distribution found",
    "ProxyError",
)


def base_python() -> str:
    return str(getattr(sys, "_base_executable", sys.executable))


@pytest.fixture(scope="session", params=["base", "3.8"])
def service_venv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with only starlette and uvicorn (the cache service's own dependencies), under
    this Python's base interpreter and under a Python 3.8 if the machine has one."""
    python = base_python() if request.param == "base" else find_python(8)
    if python is None:
        pytest.skip("no Python 3.8 on this machine (looked in ~/.pyenv and /usr/bin)")
    venv = tmp_path_factory.mktemp(f"service-venv-{request.param}")
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "starlette", "uvicorn"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if pip.returncode != 0:
        if any(sign in pip.stderr for sign in OFFLINE):
            pytest.skip(f"pip cannot reach the package index: {pip.stderr.strip()[-300:]}")
        pytest.fail(f"pip install starlette uvicorn failed: {pip.stderr[-2000:]}")
    return venv


def test_the_agent_runs_in_a_virtualenv_without_the_sandbox(
    service_venv: Path, tmp_path: Path
) -> None:
    app = tmp_path / "svc"
    shutil.copytree(REPO / "examples" / "cache_service", app / "cache_service")
    python = service_venv / "bin" / "python"
    alone = subprocess.run(
        [str(python), "-c", "import sandbox"], cwd=app, capture_output=True, text=True
    )
    assert "No module named 'sandbox'" in alone.stderr
    cmd = f"{python} -m uvicorn cache_service.app:app --host {{host}} --port {{port}} --workers 2"
    with serve(cmd, "glibc", cwd=app) as served:
        workers(served.server, "spawn_main", 2)  # both up before the tree is read
        everyone = tree(served.server)
        hellos = wait_for(served, everyone)
        assert all(h.executable.startswith(str(service_venv)) for h in hellos.values())
        put_items(served, 20)
        for pid in workers(served.server, "spawn_main", 2):
            snap = served.client.snapshot(pid)
            assert snap is not None
            check_counters(snap, pid, "glibc", None)
        log = served.server.log_tail(40)
    assert "sandbox agent" not in log  # no agent said it could not start
    print(f"\nvenv Python {hellos[max(hellos)].python}: agents in {sorted(hellos)}")
