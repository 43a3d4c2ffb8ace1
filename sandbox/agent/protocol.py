"""What the agent and the harness agree on: the folder variable, socket names, limits, ops.

A request is one JSON object on one line, `{"op": "memory"}`; the reply is one JSON object on
one line, `{"ok": true, "op": "memory", "result": {...}}` or `{"ok": false, "error": "..."}`.
One request per connection: the agent answers and closes.
"""

from __future__ import annotations

PROTOCOL_VERSION = 1
"""Bumped when a request or a reply changes incompatibly; `hello` reports it."""

DIR_ENV = "SANDBOX_AGENT_DIR"
"""The run's private folder (mode 0700) where each agent puts its socket; unset: no agent."""

MAX_REQUEST_BYTES = 64 * 1024
"""Longest request line the agent reads; longer ones get an error reply."""

READ_TIMEOUT_S = 1.0
"""How long the agent waits for a whole request line after a client connects."""

MAX_SOCKET_PATH_BYTES = 107
"""sun_path holds 108 bytes with the terminating NUL."""

OPS = ("collect", "hello", "memory", "ping", "trim")
"""What a request's `op` may be; `ping` is `hello` under another name."""

LONGEST_SOCKET_NAME = ".agent-4194304.sock.new"
"""The longest name an agent binds: the hidden name it listens on before renaming it to
agent-PID.sock, for the largest pid Linux hands out (pid_max is at most 2**22)."""


def socket_name(pid: int) -> str:
    """The file name of process `pid`'s socket: agent-PID.sock."""
    return f"agent-{pid}.sock"


def socket_pid(name: str) -> int | None:
    """The pid in a socket file name, or None if `name` is not an agent's socket."""
    digits = name[len("agent-") : -len(".sock")]
    if not (name.startswith("agent-") and name.endswith(".sock")):
        return None
    if not (digits.isascii() and digits.isdigit()) or digits.startswith("0"):
        return None
    return int(digits)
