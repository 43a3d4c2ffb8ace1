"""`sandbox serve`: the stair-stepper under an allocator, by hand, in the foreground."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sandbox.cli import flags
from sandbox.errors import ConfigError, SandboxError


@click.command("serve")
@flags.options(flags.SERVE)
def serve_cmd(
    allocator: str,
    host: str,
    port: int,
    sleep_ms: int | None,
    handler: str | None,
    pymalloc: str,
    expose: bool,
    config_path: Path | None,
) -> None:
    """Serve the stair-stepper in the foreground under an allocator (for plain `locust` use)."""
    import os

    from sandbox.allocators import registry as allocators
    from sandbox.config import settings as config
    from sandbox.config.server_settings import exposure_error
    from sandbox.measure.launch import build_environ, server_command
    from sandbox.system.processes import port_in_use

    refusal = exposure_error(host, expose)
    if refusal:
        raise ConfigError(refusal)
    bench = config.load_benchmark(config_path)
    overrides = config.validate_overrides("option", {"sleep_ms": sleep_ms, "handler": handler})
    spec = config.build_spec(bench, overrides, port=port)
    resolved = allocators.resolve(allocator, bench.allocators)
    if port_in_use(host, port):
        raise SandboxError(f"port {port} on {host} is in use; stop the other server or pass --port")
    env = build_environ(
        spec.server.settings.to_environ(), resolved.environ(), pymalloc=pymalloc == "on"
    )
    target = "" if port == 3000 and host == "127.0.0.1" else f" --host http://{host}:{port}"
    click.echo(
        f"Serving on http://{host}:{port} under {allocator} "
        f"(handler {spec.server.settings.handler}, SLEEP_MS {spec.server.settings.sleep_ms}); "
        f"drive it from the repository root with: locust --tags medium{target}",
        err=True,
    )
    sys.stdout.flush()
    command = [*server_command(host, port), *(["--expose"] if expose else [])]
    os.execve(sys.executable, command, env)
