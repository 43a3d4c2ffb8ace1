"""`python -m sandbox.server [--host H] [--port P] [--workers N] [--app module:attr] [--expose]
[--header-timeout S] [--body-timeout S]`.

Without --app: the stair-stepper, configured by HANDLER, SLEEP_MS, THREADS and MAX_BODY_BYTES,
and its known truths by LEAK_BYTES, LEAK_KIND, CACHE_DOCS and PIN_OBJECTS (see ServerSettings).
With --app: any ASGI app, served by uvicorn the same way, so the harness can run a user's service
under an allocator. --workers N: N uvicorn worker processes.
Either way with the request deadlines and limits of ServeLimits; a --host beyond loopback needs
--expose, which adds a limit on connections.

When SANDBOX_MALLOC_OWNER_FILE is set, the process writes there the path of the library whose
`malloc` it calls (dladdr), so the harness can check the allocator of an app that has no /health.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from types import FrameType

import uvicorn

from sandbox.config.server_settings import (
    EXPOSED_LIMITS,
    LOCAL_LIMITS,
    OWNER_FILE_ENV,
    ServerSettings,
    exposure_error,
)
from sandbox.errors import ConfigError
from sandbox.server.app import create_app
from sandbox.server.protocol import uvicorn_options
from sandbox.system.processes import port_in_use


def app_from_environ() -> object:
    """The stair-stepper for uvicorn's --factory (worker processes read the same environment)."""
    return create_app(ServerSettings.from_environ(os.environ))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.server",
        description=(
            "The stair-stepper. Environment: HANDLER, SLEEP_MS, THREADS, MAX_BODY_BYTES; "
            "known truths: LEAK_BYTES, LEAK_KIND, CACHE_DOCS, PIN_OBJECTS."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=3000, help="port to bind (default %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    parser.add_argument("--app", help="serve this ASGI app (module:attr) instead")
    parser.add_argument(
        "--expose",
        action="store_true",
        help="allow a --host beyond loopback; then at most "
        f"{EXPOSED_LIMITS.max_connections} connections at once",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        metavar="S",
        help=f"seconds for a request's headers (default {LOCAL_LIMITS.header_timeout_s:g})",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        metavar="S",
        help=f"seconds for a request's body (default {LOCAL_LIMITS.body_timeout_s:g})",
    )
    args = parser.parse_args(argv)
    refusal = exposure_error(args.host, args.expose)
    if refusal:
        print(f"Error: {refusal}", file=sys.stderr)
        return 2
    limits = EXPOSED_LIMITS if args.expose else LOCAL_LIMITS
    for name in ("header_timeout", "body_timeout"):
        seconds = getattr(args, name)
        if seconds is not None and not 0 < seconds <= 3600:
            print(f"Error: --{name.replace('_', '-')} must be from 0 to 3600 s", file=sys.stderr)
            return 2
        if seconds is not None:
            limits = dataclasses.replace(limits, **{f"{name}_s": seconds})
    try:
        settings = ServerSettings.from_environ(os.environ)
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.workers < 1:
        print("Error: --workers must be 1 or more", file=sys.stderr)
        return 2
    if port_in_use(args.host, args.port):
        print(
            f"Error: port {args.port} on {args.host} is in use; "
            "stop the other server or pass --port",
            file=sys.stderr,
        )
        return 1
    _write_malloc_owner()
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal with the handler that
    # was there before it started. With the default handler the process dies by the signal and
    # skips interpreter exit, which loses what runs at exit (memray's capture). This handler
    # turns that last SIGTERM into a normal exit.
    signal.signal(signal.SIGTERM, _exit_normally)
    options = {
        "host": args.host,
        "port": args.port,
        "log_level": "warning",
        "access_log": False,
        **uvicorn_options(limits),
    }
    if args.expose:
        print(f"Exposed on {args.host}:{args.port}: {limits.describe()}", file=sys.stderr)
    if args.app:
        sys.path.insert(0, os.getcwd())  # like the uvicorn command: modules under the cwd
        uvicorn.run(args.app, workers=args.workers, **options)
    elif args.workers > 1:  # workers need an import string; each builds its own app
        uvicorn.run(
            "sandbox.server.__main__:app_from_environ",
            factory=True,
            workers=args.workers,
            **options,
        )
    else:
        uvicorn.run(create_app(settings), **options)
    return 0


def _write_malloc_owner() -> None:
    path = os.environ.get(OWNER_FILE_ENV)
    if not path:
        return
    from sandbox.server import introspect

    try:
        with open(path, "w") as fh:
            fh.write(introspect.malloc_owner() or "")
    except OSError:
        pass  # the harness then checks the memory map alone


def _exit_normally(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
