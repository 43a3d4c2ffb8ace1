"""One error tree: the core raises these; only the CLI prints them and picks the exit code."""

from __future__ import annotations


class SandboxError(Exception):
    """Something the user can fix; the message names the cause and the fix."""

    exit_code = 1


class ConfigError(SandboxError):
    """A bad option, benchmark.yml key or experiment file (a usage error)."""

    exit_code = 2


class AllocatorError(SandboxError):
    """An allocator library is missing, or is not really mapped in the server."""


class ServerError(SandboxError):
    """The server did not start, did not become ready, or died."""


class LoadError(SandboxError):
    """Locust failed to run or produced no statistics."""


class ResultFormatError(SandboxError):
    """A result file is unreadable, of an unknown version, or inconsistent (bad input: exit 2,
    like a usage error)."""

    exit_code = 2


class InspectError(SandboxError):
    """`sandbox inspect` cannot read a process: not permitted, no gdb, a call that failed."""


class TargetExitedError(InspectError):
    """The process to inspect does not exist, or exited while it was being read."""
