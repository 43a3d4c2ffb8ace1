"""The agent's private channel: a Unix socket per process, served by one daemon thread.

`start(folder)` binds FOLDER/agent-PID.sock (mode 0600; the harness made FOLDER 0700) and
serves it from a daemon thread, one request per connection, one at a time. The thread uses no
signals and blocks in accept/recv (which release the GIL); the allocator's readers are ctypes
calls, which release it too. A fork waits for the request being answered, if any (at most
FORK_WAIT_S), so that no lock the agent took (an import's, the allocator's) is copied held
into the child; the child then starts its own agent on its own socket. At exit the socket
file is removed. A process that dies of a signal (uvicorn's workers re-raise
SIGTERM once they have shut down) or leaves by os._exit (a forked multiprocessing child) runs
no atexit: its socket stays, and connecting to it is refused. No error reaches the host
program: each is one line on stderr (fd 2), and the agent goes on serving.
"""

from __future__ import annotations

import atexit
import errno
import os
import socket
import stat
import threading
import time

from . import protocol

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing into the host
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_THREAD_NAME = "sandbox-agent"
_MAX_BACKOFF_S = 1.0
FORK_WAIT_S = 1.0
"""How long os.fork() waits for the request in progress before it goes ahead anyway."""

_busy = threading.Lock()
"""Held while a request is answered, and by os.fork() from before to after the fork."""
_fork_held = False


class SetupError(Exception):
    """The agent cannot serve in this folder; the message says why and what to do."""


def log(message: str) -> None:
    """One line on stderr, written to fd 2 directly (no Python-level locks, safe after fork)."""
    try:
        os.write(2, f"sandbox agent (pid {os.getpid()}): {message}\n".encode(errors="replace"))
    except OSError:
        pass


def check_folder(folder: str) -> None:
    """SetupError unless `folder` is a directory of ours that nobody else can enter."""
    try:
        info = os.stat(folder)
    except OSError as exc:
        raise SetupError(f"cannot use {folder}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise SetupError(f"{folder} is not a directory")
    if info.st_uid != os.geteuid():
        raise SetupError(f"{folder} belongs to uid {info.st_uid}, not to this process's uid")
    if info.st_mode & 0o077:
        raise SetupError(
            f"{folder} has mode {stat.S_IMODE(info.st_mode):04o}; "
            "the harness must create it with mode 0700"
        )


class Agent:
    """One process's socket and the thread that serves it."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.pid = os.getpid()
        self.path = os.path.join(folder, protocol.socket_name(self.pid))
        self._hidden = os.path.join(folder, f".{protocol.socket_name(self.pid)}.new")
        self._listener: socket.socket | None = None
        self._closed = False
        self._logged: set[str] = set()

    def start(self) -> None:
        """Bind the socket and start serving; SetupError (or OSError) if it cannot."""
        check_folder(self.folder)
        if len(os.fsencode(self._hidden)) > protocol.MAX_SOCKET_PATH_BYTES:
            raise SetupError(f"socket path {self.path} is over 107 bytes; use a shorter folder")
        self._listener = self._bind()
        thread = threading.Thread(target=self._serve, name=_THREAD_NAME, daemon=True)
        thread.start()

    def _bind(self) -> socket.socket:
        """Listen on a hidden name, then rename it into place: a client that sees the socket
        can connect (a bound socket refuses connections until it listens)."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:  # left by a crash with this pid
                os.unlink(self._hidden)
            except FileNotFoundError:
                pass
            listener.bind(self._hidden)
            os.chmod(self._hidden, 0o600)
            listener.listen(16)
            # Replaces one left by an earlier process with this pid that exited without atexit.
            os.replace(self._hidden, self.path)
        except BaseException:
            listener.close()
            try:
                os.unlink(self._hidden)
            except OSError:
                pass
            raise
        return listener

    def close(self) -> None:
        """Stop serving and remove the socket file (only the process that made it does)."""
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            try:  # wakes the thread blocked in accept()
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        if os.getpid() == self.pid:
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def forget(self) -> None:
        """In a forked child: drop the parent's inherited socket, leave its file alone."""
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def _log_once(self, key: str, message: str) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log(message)

    def _serve(self) -> None:
        failures = 0
        while not self._closed:
            listener = self._listener
            if listener is None:
                return
            try:
                conn, _ = listener.accept()
            except OSError as exc:
                if self._closed:
                    return
                failures += 1
                if exc.errno in (errno.EBADF, errno.ENOTSOCK, errno.EINVAL):
                    self._lost()  # e.g. a daemon closing every descriptor
                else:  # e.g. EMFILE in a server out of descriptors: wait, try again
                    self._log_once(f"accept {exc.errno}", f"accept failed: {exc}")
                time.sleep(min(0.05 * failures, _MAX_BACKOFF_S))
                continue
            failures = 0
            if not self._still_ours(listener):
                conn.close()
                continue
            try:
                with _busy:
                    self._handle(conn)
            except Exception as exc:  # never let the thread die on one request
                self._log_once(f"handle {type(exc).__name__}", f"request failed: {exc!r}")
            finally:
                conn.close()

    def _still_ours(self, listener: socket.socket) -> bool:
        """False (after rebinding) if the host closed our descriptor, which an accept() that
        was already waiting does not notice, and may have reused its number."""
        try:
            if listener.getsockname() == self._hidden:  # the name it was bound to
                return True
        except OSError:
            pass
        self._lost()
        return False

    def _lost(self) -> None:
        """The host closed our descriptor: bind a new socket (the number may be someone else's)."""
        self._log_once("lost", "the host closed the agent's socket; binding a new one")
        old, self._listener = self._listener, None
        if old is not None:
            old.detach()  # the descriptor is no longer ours: never close it
        try:
            self._listener = self._bind()
        except Exception as exc:
            self._log_once("rebind", f"cannot bind {self.path} again: {exc}")

    def _handle(self, conn: socket.socket) -> None:
        import json  # here, not at start: most processes are never asked

        conn.settimeout(protocol.READ_TIMEOUT_S)
        try:
            line = _read_line(conn)
        except _BadLine as exc:
            reply: dict[str, Any] = {"ok": False, "error": str(exc)}
        except OSError:
            return  # the client went away or stayed silent: nobody to answer
        else:
            reply = _answer(line, self._log_once)
        data = json.dumps(reply, separators=(",", ":")).encode("ascii") + b"\n"
        try:  # the client gave up waiting
            conn.sendall(data)
        except OSError:
            pass


class _BadLine(Exception):
    pass


def _read_line(conn: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            if not chunks:
                raise _BadLine("empty request; send one JSON object and a newline")
            return b"".join(chunks)
        end = chunk.find(b"\n")
        if end >= 0:
            chunks.append(chunk[:end])
            size += end
        else:
            chunks.append(chunk)
            size += len(chunk)
        if size > protocol.MAX_REQUEST_BYTES:
            raise _BadLine(f"request over {protocol.MAX_REQUEST_BYTES} bytes; send one short line")
        if end >= 0:
            return b"".join(chunks)


def _answer(line: bytes, log_once: Callable[[str, str], None]) -> dict[str, Any]:
    import json

    from . import ops

    try:
        request = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return {"ok": False, "error": f"request is not JSON: {exc}"[:300]}
    try:
        return ops.answer(request)
    except ops.BadRequest as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # a reader failed: say so, keep serving
        op = request.get("op") if isinstance(request, dict) else None
        log_once(f"op {op} {type(exc).__name__}", f"{op} failed: {exc!r}")
        return {"ok": False, "error": f"{op} failed: {type(exc).__name__}: {exc}"}


_current: Agent | None = None
_folder: str | None = None
_hooks = False


def current() -> Agent | None:
    """This process's agent, if it started."""
    return _current if _current is not None and _current.pid == os.getpid() else None


def start(folder: str) -> Agent | None:
    """Start this process's agent in `folder` (and in every child forked later).

    Returns None, after one line on stderr, if it cannot start; never raises.
    """
    global _folder, _hooks
    _folder = folder
    if not _hooks:
        _hooks = True
        os.register_at_fork(
            before=_before_fork,
            after_in_parent=_after_fork_in_parent,
            after_in_child=_after_fork_in_child,
        )
        atexit.register(_at_exit)
    if current() is not None:
        return _current
    return _start_here()


def stop() -> None:
    """Stop this process's agent and forget the folder (children forked later start none)."""
    global _current, _folder
    agent, _current, _folder = current(), None, None
    if agent is not None:
        agent.close()


def _start_here() -> Agent | None:
    global _current
    if _folder is None:
        return None
    agent = Agent(_folder)
    try:
        agent.start()
    except Exception as exc:
        log(f"not started: {exc}")
        return None
    _current = agent
    return agent


def _before_fork() -> None:
    global _fork_held
    # Waits with the GIL released; never forever: a fork must not hang on the agent.
    _fork_held = _busy.acquire(timeout=FORK_WAIT_S)


def _after_fork_in_parent() -> None:
    global _fork_held
    if _fork_held:
        _fork_held = False
        _busy.release()


def _after_fork_in_child() -> None:
    global _current, _busy, _fork_held
    _busy, _fork_held = threading.Lock(), False  # the copy is held, by a thread now gone
    try:
        inherited, _current = _current, None
        if inherited is not None:
            inherited.forget()
        _start_here()
    except Exception as exc:
        log(f"not started after fork: {exc!r}")


def _at_exit() -> None:
    agent = current()
    if agent is not None:
        agent.close()
