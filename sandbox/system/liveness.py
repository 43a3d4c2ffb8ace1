"""Is a process still the one we knew? A pid with its start time (and the boot and machine it ran
on), so that a reused pid never passes for a harness that died.

Standard library only, besides the result section it fills.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from sandbox.results.sections import HarnessInfo

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


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


def this_process() -> HarnessInfo:
    """The identity of the running process."""
    pid = os.getpid()
    return HarnessInfo(
        pid=pid, start_ticks=start_ticks(pid), boot_id=boot_id(), hostname=platform.node()
    )


def token(info: HarnessInfo) -> str:
    """`PID:START_TICKS`, the form children carry in their environment (SANDBOX_HARNESS)."""
    return f"{info.pid}:{info.start_ticks}"


def alive(info: HarnessInfo) -> bool | None:
    """Whether that process still runs: None when it cannot be told (another machine, or no
    start time recorded)."""
    if info.hostname != platform.node() or info.start_ticks is None:
        return None
    if info.boot_id is not None and info.boot_id != boot_id():
        return False  # this machine rebooted since
    return start_ticks(info.pid) == info.start_ticks
