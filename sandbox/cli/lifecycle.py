"""How a command that runs servers begins and ends: SIGTERM and SIGINT end it as Ctrl-C does
(a partial result, exit 130), and checkpoints whose harness died are settled before results
are read."""

from __future__ import annotations

import signal
from collections.abc import Iterable
from pathlib import Path
from types import FrameType

import click


def settle(paths: Iterable[Path]) -> None:
    """Mark the checkpoints under `paths` whose harness died (`harness-died`), and say so."""
    from sandbox.results import checkpoints

    for done in checkpoints.settle(paths):
        click.echo(f"note: {done.describe()}", err=True)


def sigterm_as_interrupt() -> None:
    """SIGTERM and SIGINT both end a run as Ctrl-C does (a partial result, exit 130).

    SIGINT is set explicitly: a process started in the background by a non-interactive shell
    inherits SIGINT *ignored*, and Python then never raises KeyboardInterrupt for it.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
