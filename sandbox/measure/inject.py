"""Put the agent into every Python process of a server: the environment that does it.

`agent_environ` prefixes PYTHONPATH with the agent's inject folder (whose sitecustomize starts
the agent and then runs any sitecustomize it hides) and names the run's private folder, where
each process's agent puts its socket. Nothing else in the environment changes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import sandbox.agent
from sandbox.agent import protocol
from sandbox.errors import ConfigError

INJECT_DIR = Path(sandbox.agent.__file__).resolve().parent / "inject"
"""The folder that goes first on the server's PYTHONPATH (it holds only sitecustomize.py)."""


def check_folder(folder: Path) -> None:
    """ConfigError unless `folder` can hold agent sockets: short enough a path, mode 0700."""
    longest = os.path.join(os.fsencode(folder), protocol.LONGEST_SOCKET_NAME.encode())
    if len(longest) > protocol.MAX_SOCKET_PATH_BYTES:
        raise ConfigError(
            f"the agent folder {folder} is too long a path for a Unix socket "
            f"({len(longest)} > {protocol.MAX_SOCKET_PATH_BYTES} bytes with the socket's name); "
            "set TMPDIR to a shorter folder, e.g. TMPDIR=/tmp"
        )
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"the agent folder {folder} has mode {mode:04o}; it must be 0700 (private to you)"
        )


PREFIX = "sandbox-agents-"
SHORT_PARENTS = (Path("/tmp"), Path("/dev/shm"))
"""Where the folder goes when the temporary folder's path is too long for a socket's."""


def _fits(parent: Path) -> bool:
    """Whether a folder made by mkdtemp in `parent` (8 random characters) leaves room for the
    longest socket name."""
    folder = os.path.join(os.fsencode(parent), f"{PREFIX}xxxxxxxx".encode())
    longest = os.path.join(folder, protocol.LONGEST_SOCKET_NAME.encode())
    return len(longest) <= protocol.MAX_SOCKET_PATH_BYTES


def short_parent() -> Path:
    """The temporary folder (TMPDIR, ...), or the first of SHORT_PARENTS that is writable when
    that path is too long for a Unix socket (a test's or a tool's deep TMPDIR); the temporary
    folder again if none is, so that `check_folder` names the problem."""
    default = Path(tempfile.gettempdir())
    if _fits(default):
        return default
    for parent in SHORT_PARENTS:
        if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK) and _fits(parent):
            return parent
    return default


@contextlib.contextmanager
def agent_folder(parent: Path | None = None) -> Iterator[Path]:
    """A new private (0700) folder for the run's agent sockets, removed with what is in it;
    in `parent`, by default the temporary folder unless its path is too long (`short_parent`)."""
    folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=short_parent() if parent is None else parent))
    try:
        check_folder(folder)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def agent_environ(folder: Path, env: Mapping[str, str]) -> dict[str, str]:
    """`env` with the agent injected: PYTHONPATH starts with INJECT_DIR, SANDBOX_AGENT_DIR set."""
    check_folder(folder)
    inject = str(INJECT_DIR)
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != inject]
    return {
        **env,
        "PYTHONPATH": os.pathsep.join([inject, *rest]),
        protocol.DIR_ENV: str(folder),
    }
