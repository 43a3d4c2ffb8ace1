"""Is a process still the one we knew? A pid with its start time (and the boot and machine it ran
on), so that a reused pid never passes for a harness that died.

Standard library only: a run records the identity as its `HarnessInfo` section
(`sandbox.results.conditions.running_harness`).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class Identity:
    """A process as it can be known again: its pid, when it started, the boot and the machine."""

    pid: int
    start_ticks: int | None
    """When it started, in clock ticks since boot (/proc/PID/stat field 22)."""
    boot_id: str | None
    """The boot it ran in (/proc/sys/kernel/random/boot_id)."""
    hostname: str | None


class Known(Protocol):
    """Anything that names a process as `Identity` does (a run's recorded harness)."""

    @property
    def pid(self) -> int: ...
    @property
    def start_ticks(self) -> int | None: ...
    @property
    def boot_id(self) -> str | None: ...
    @property
    def hostname(self) -> str | None: ...


def boot_id() -> str | None:
    """This boot's random id (a pid and start time are only unique within one boot)."""
    try:
        return _BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (the state) on; the command name before it may hold spaces."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return text.rpartition(")")[2].split()


def start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot; None when there is no such process, or it
    is a zombie (dead, not yet reaped)."""
    fields = _stat_fields(pid)
    if not fields or len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    try:
        return int(fields[19])  # field 22 of proc(5)
    except ValueError:
        return None


def this_process() -> Identity:
    """The identity of the running process."""
    pid = os.getpid()
    return Identity(
        pid=pid, start_ticks=start_ticks(pid), boot_id=boot_id(), hostname=platform.node()
    )


def token(info: Known) -> str:
    """`PID:START_TICKS`, the form children carry in their environment (SANDBOX_HARNESS)."""
    return f"{info.pid}:{info.start_ticks}"


def alive(info: Known) -> bool | None:
    """Whether that process still runs: None when it cannot be told (another machine, or no
    start time recorded)."""
    if info.hostname != platform.node() or info.start_ticks is None:
        return None
    if info.boot_id is not None and info.boot_id != boot_id():
        return False  # this machine rebooted since
    return start_ticks(info.pid) == info.start_ticks
