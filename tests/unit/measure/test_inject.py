"""Injecting the agent: the environment, the private folder, and sitecustomize in real children
(chaining to the sitecustomize it hides, after fork, when it cannot start)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import ConfigError
from sandbox.measure import inject
from sandbox.measure.agent_client import AgentClient, AgentError, Hello, MemorySnapshot

# A child that prints its pid, reads lines from stdin and answers each with `eval`: the test
# drives it while its agent serves.
CHILD = textwrap.dedent(
    """
    import os, sys
    print(os.getpid(), flush=True)
    for line in sys.stdin:
        print(repr(eval(line)), flush=True)
    """
)


def test_agent_environ_prefixes_pythonpath_and_names_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "a"
    folder.mkdir(mode=0o700)
    env = {"PATH": "/bin", "PYTHONPATH": f"/x{os.pathsep}{inject.INJECT_DIR}{os.pathsep}/y"}
    got = inject.agent_environ(folder, env)
    assert got == {
        "PATH": "/bin",
        "PYTHONPATH": os.pathsep.join([str(inject.INJECT_DIR), "/x", "/y"]),
        "SANDBOX_AGENT_DIR": str(folder),
    }
    assert env["PYTHONPATH"] == f"/x{os.pathsep}{inject.INJECT_DIR}{os.pathsep}/y"
    assert inject.agent_environ(folder, {})["PYTHONPATH"] == str(inject.INJECT_DIR)


def test_inject_folder_holds_only_sitecustomize() -> None:
    assert sorted(p.name for p in inject.INJECT_DIR.iterdir() if p.name != "__pycache__") == [
        "sitecustomize.py"
    ]


def test_agent_folder_is_private_and_removed() -> None:
    with inject.agent_folder() as folder:
        assert folder.parent == Path(tempfile.gettempdir())
        assert folder.stat().st_mode & 0o777 == 0o700
        (folder / "agent-1.sock").touch()
    assert not folder.exists()


def test_a_temporary_folder_too_deep_for_a_socket_gives_way_to_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / ("d" * (90 - len(str(tmp_path))))
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    assert inject.short_parent() == Path("/tmp")
    with inject.agent_folder() as folder:
        assert folder.parent == Path("/tmp")
        inject.agent_environ(folder, {})  # short enough: no error
    monkeypatch.setattr(inject, "SHORT_PARENTS", (tmp_path / "missing",))
    assert inject.short_parent() == deep  # nothing shorter: check_folder will say why


def test_an_open_folder_is_refused(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    with pytest.raises(ConfigError) as raised:
        inject.agent_environ(tmp_path, {})
    assert str(raised.value) == (
        f"the agent folder {tmp_path} has mode 0755; it must be 0700 (private to you)"
    )


def test_a_folder_too_long_for_a_socket_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / ("x" * (100 - len(str(tmp_path))))
    folder.mkdir(mode=0o700)
    with pytest.raises(ConfigError) as raised:
        inject.agent_environ(folder, {})
    length = len(f"{folder}/.agent-4194304.sock.new")
    assert length > 107
    assert str(raised.value) == (
        f"the agent folder {folder} is too long a path for a Unix socket ({length} > 107 bytes "
        "with the socket's name); set TMPDIR to a shorter folder, e.g. TMPDIR=/tmp"
    )


class Child:
    """A Python child with the agent injected, driven line by line over stdin."""

    def __init__(self, folder: Path, env: dict[str, str], python: str = sys.executable) -> None:
        self.proc = subprocess.Popen(
            [python, "-c", CHILD],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.pid = int(self.proc.stdout.readline())
        self.client = AgentClient(folder)

    def eval(self, expression: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(expression + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def finish(self) -> tuple[int, str]:
        """Close stdin; the exit code and stderr."""
        _, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # a grandchild may hold stdout
            self.proc.communicate(timeout=5)


@pytest.fixture(autouse=True)
def children(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every Child a test started is killed and reaped, whatever the test did."""
    started: list[Child] = []
    init = Child.__init__

    def tracked(self: Child, *args: Any, **kwargs: Any) -> None:
        started.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(Child, "__init__", tracked)
    yield
    for child in started:
        if hasattr(child, "proc"):
            child.kill()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "agents"
    path.mkdir(mode=0o700)
    return path


def child_env(folder: Path, *later: Path, agent: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SANDBOX_AGENT_DIR")}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in later)
    return inject.agent_environ(folder, env) if agent else {
        **env, "PYTHONPATH": os.pathsep.join([str(inject.INJECT_DIR), env["PYTHONPATH"]])
    }  # fmt: skip


def other_sitecustomize(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "theirs"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(textwrap.dedent(body))
    return folder


def wait_for_agent(client: AgentClient, pid: int, timeout_s: float = 5.0) -> Hello:
    """The agent's hello once its socket is up (a forked child binds it just after fork)."""
    deadline = time.monotonic() + timeout_s
    while (hello := client.hello(pid)) is None:
        assert time.monotonic() < deadline, f"no agent for pid {pid} within {timeout_s:g} s"
        time.sleep(0.01)
    return hello


def test_the_agent_starts_and_exits_cleanly(folder: Path) -> None:
    child = Child(folder, child_env(folder))
    snap = child.client.snapshot(child.pid)
    assert snap is not None and snap.pid == child.pid and snap.rss_bytes > 0
    assert child.eval("sys.modules['sitecustomize'].__file__").endswith(
        "/sandbox/agent/inject/sitecustomize.py'"
    )
    assert child.eval("[t.name for t in __import__('threading').enumerate()]") == (
        "['MainThread', 'sandbox-agent']"
    )
    assert child.finish() == (0, "")
    assert child.client.sockets() == {}  # removed at exit


def test_it_chains_to_the_sitecustomize_it_hides(tmp_path: Path, folder: Path) -> None:
    theirs = other_sitecustomize(tmp_path, "MARK = 'theirs'\nimport os\nos.environ['SEEN'] = '1'")
    child = Child(folder, child_env(folder, theirs))
    assert child.eval("(sys.modules['sitecustomize'].MARK, os.environ['SEEN'])") == (
        "('theirs', '1')"
    )
    assert child.client.hello(child.pid) is not None
    assert child.finish() == (0, "")


def test_it_chains_without_an_agent_when_the_folder_is_unset(tmp_path: Path, folder: Path) -> None:
    theirs = other_sitecustomize(tmp_path, "MARK = 'theirs'")
    child = Child(folder, child_env(folder, theirs, agent=False))
    assert child.eval("sys.modules['sitecustomize'].MARK") == "'theirs'"
    assert child.eval("'_sandbox_agent' in sys.modules") == "False"
    assert child.client.sockets() == {}
    assert child.finish() == (0, "")


def test_errors_in_the_hidden_sitecustomize_read_as_without_us(
    tmp_path: Path, folder: Path
) -> None:
    theirs = other_sitecustomize(tmp_path, "raise RuntimeError('boom')")
    child = Child(folder, child_env(folder, theirs))
    assert child.client.hello(child.pid) is not None
    assert child.finish() == (
        0,
        "Error in sitecustomize; set PYTHONVERBOSE for traceback:\nRuntimeError: boom\n",
    )


def test_a_forked_child_gets_its_own_agent(folder: Path) -> None:
    child = Child(folder, child_env(folder))
    # The fork waits on a pipe until the test has asked its agent, then exits without atexit.
    child.eval("globals().update(r=os.pipe())")
    forked = int(child.eval("os.fork() or (os.read(r[0], 1), os._exit(0))"))
    client = child.client
    try:
        hello = wait_for_agent(client, forked)
    except BaseException:
        os.kill(forked, signal.SIGKILL)
        raise
    assert (hello.pid, hello.ppid) == (forked, child.pid)
    parent = client.hello(child.pid)
    assert parent is not None and parent.pid == child.pid  # the parent's agent still serves
    assert set(client.sockets()) == {child.pid, forked}
    child.eval(f"os.write(r[1], b'x') and os.waitpid({forked}, 0)[0]")
    assert client.snapshot(forked) is None  # gone: its socket file stays, refused
    assert child.finish() == (0, "")


def test_a_folder_it_cannot_use_is_one_line_and_the_program_runs(tmp_path: Path) -> None:
    folder = tmp_path / "open"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    env = {**child_env(tmp_path, agent=False), "SANDBOX_AGENT_DIR": str(folder)}
    child = Child(folder, env)
    assert child.eval("1 + 1") == "2"
    code, err = child.finish()
    assert (code, err) == (
        0,
        f"sandbox agent (pid {child.pid}): not started: "
        f"{folder} has mode 0755; the harness must create it with mode 0700\n",
    )


def test_the_agent_serves_through_the_hosts_own_signal_handlers(folder: Path) -> None:
    child = Child(folder, child_env(folder))
    child.eval("globals().update(caught=[], signal=__import__('signal'))")
    child.eval("signal.signal(signal.SIGUSR1, lambda *a: caught.append(1)) and None")
    for _ in range(50):
        os.kill(child.pid, signal.SIGUSR1)
        assert child.client.snapshot(child.pid) is not None
    assert int(child.eval("len(caught)")) > 0  # the host's handler ran, ours never existed
    assert child.finish() == (0, "")


def test_it_chains_to_the_system_pythons_own_sitecustomize(folder: Path) -> None:
    """Debian's /usr/bin/python3 ships one (apport's hook): it must still be the one in use."""
    python = "/usr/bin/python3"
    show = "import sitecustomize; print(sitecustomize.__file__)"
    if not os.access(python, os.X_OK):
        pytest.skip(f"no {python} on this machine")
    plain = subprocess.run([python, "-c", show], capture_output=True, text=True, env={})
    if plain.returncode != 0:
        pytest.skip(f"{python} has no sitecustomize of its own")
    env = child_env(folder)
    injected = subprocess.run([python, "-c", show], capture_output=True, text=True, env=env)
    assert (injected.returncode, injected.stdout, injected.stderr) == (0, plain.stdout, "")
    child = Child(folder, env, python=python)
    assert child.client.hello(child.pid) is not None
    assert child.finish() == (0, "")


def test_the_agent_rebinds_when_the_host_closes_its_descriptor(folder: Path) -> None:
    """As a daemonising server that closes every descriptor would; the number is reused."""
    child = Child(folder, child_env(folder))
    assert child.client.hello(child.pid) is not None
    fd = child.eval("sys.modules['_sandbox_agent.channel'].current()._listener.fileno()")
    child.eval(f"os.close({fd}) or globals().update(pipe=os.pipe())")
    assert child.eval("pipe[0]") == fd  # the agent's number now names someone else's pipe
    deadline = time.monotonic() + 10
    answered = None
    while answered is None and time.monotonic() < deadline:
        with contextlib.suppress(AgentError):  # the connection it accepted on the old one
            answered = child.client.hello(child.pid)
        time.sleep(0.05)
    assert answered is not None and answered.pid == child.pid
    assert child.eval("os.fstat(pipe[0]).st_mode & 0o170000 == 0o010000") == "True"  # a FIFO
    assert child.finish() == (
        0,
        f"sandbox agent (pid {child.pid}): the host closed the agent's socket; binding a new one\n",
    )


def test_a_fork_waits_for_the_request_in_progress(folder: Path) -> None:
    """So that no lock the agent holds mid-request is copied, held, into the child."""
    child = Child(folder, child_env(folder))
    assert child.client.hello(child.pid) is not None  # the agent loads its ops on first use
    child.eval(
        "sys.modules['_sandbox_agent.ops'].register_extra("
        "'slow', lambda: __import__('time').sleep(0.6) or 1)"
    )
    replies: list[object] = []
    asking = threading.Thread(target=lambda: replies.append(child.client.snapshot(child.pid)))
    asking.start()
    time.sleep(0.2)  # the agent is now inside the slow counter
    took_s = float(
        child.eval(
            "(lambda t: (os.fork() or os._exit(0)) and __import__('time').monotonic() - t)"
            "(__import__('time').monotonic())"
        )
    )
    asking.join(10)
    assert 0.2 < took_s < 1.0  # waited for the rest of the request, not for FORK_WAIT_S
    (snap,) = replies
    assert isinstance(snap, MemorySnapshot) and snap.extra["slow"] == 1
    assert child.finish() == (0, "")
