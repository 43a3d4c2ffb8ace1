"""Facts about the machine and software a run happened on."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata as importlib_metadata
from pathlib import Path

from sandbox import __version__
from sandbox.results.conditions import HostInfo

_PACKAGES = ("starlette", "uvicorn", "locust", "psutil", "anyio")


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(package: str) -> str | None:
    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        return None


def glibc_version() -> str | None:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"
    except (ValueError, OSError, AttributeError):
        return None


def collect(root: Path) -> HostInfo:
    """Python, glibc, kernel, CPU, memory, package versions, git commit (of `root`)."""
    libc = glibc_version()
    commit = _git(root, "rev-parse", "HEAD")
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    try:
        import psutil

        mem_total = psutil.virtual_memory().total
    except (ImportError, OSError):
        mem_total = None
    return HostInfo(
        hostname=platform.node(),
        python=platform.python_version(),
        python_implementation=platform.python_implementation(),
        glibc=libc.split()[-1] if libc else None,
        kernel=platform.release(),
        machine=platform.machine(),
        cpu_count=os.cpu_count(),
        memory_total_bytes=mem_total,
        sandbox_version=__version__,
        packages={p: _version(p) for p in _PACKAGES},
        git_commit=commit,
        git_dirty=bool(dirty) if dirty is not None else None,
    )
