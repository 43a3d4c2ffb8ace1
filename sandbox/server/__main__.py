"""`python -m sandbox.server [--host H] [--port P]`: run the stair-stepper, settings from the env.

HANDLER, SLEEP_MS, THREADS and MAX_BODY_BYTES configure it (see ServerSettings).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType

import uvicorn

from sandbox.errors import ConfigError
from sandbox.server.app import create_app
from sandbox.server.launch import port_in_use
from sandbox.server.settings import ServerSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.server",
        description="The stair-stepper. Environment: HANDLER, SLEEP_MS, THREADS, MAX_BODY_BYTES.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=3000, help="port to bind (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        settings = ServerSettings.from_environ(os.environ)
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    if port_in_use(args.host, args.port):
        print(
            f"Error: port {args.port} on {args.host} is in use; "
            "stop the other server or pass --port",
            file=sys.stderr,
        )
        return 1
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal with the handler that
    # was there before it started. With the default handler the process dies by the signal and
    # skips interpreter exit, which loses what runs at exit (memray's capture). This handler
    # turns that last SIGTERM into a normal exit.
    signal.signal(signal.SIGTERM, _exit_normally)
    uvicorn.run(
        create_app(settings), host=args.host, port=args.port, log_level="warning", access_log=False
    )
    return 0


def _exit_normally(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
