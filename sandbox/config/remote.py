"""Load from other machines: the run's server and Locust master bound where workers on other
machines reach them (`sandbox run --server-host ADDR --expose --master-bind ADDR:PORT
--expect-remote-workers N`).

Loopback stays the default: nothing here changes a run unless these options are given, and an
address beyond loopback needs --expose, as `sandbox serve --host` does.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sandbox.config.run_spec import RunSpec
from sandbox.config.server_settings import exposure_error, is_loopback_name
from sandbox.errors import ConfigError

LOCUST_MASTER_PORT = 5557
"""Locust's own default master port, when --master-bind gives none."""


@dataclass(frozen=True)
class RemoteLoad:
    """The run options for workers on other machines, as typed (None: not given)."""

    server_host: str | None = None
    """--server-host: the address the server binds and the workers send load to."""
    expose: bool = False
    """--expose: allow a --server-host beyond loopback."""
    master_bind: str | None = None
    """--master-bind HOST[:PORT]: where the Locust master listens for its workers."""
    remote_workers: int = 0
    """--expect-remote-workers N: workers on other machines each batch waits for."""


def parse_master_bind(text: str) -> tuple[str, int]:
    """`HOST[:PORT]` (an IPv6 address in brackets: `[::1]:5557`) as host and port."""
    host, port_text = _split_host_port(text.strip())
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(
            f"--master-bind {text!r}: expected an IP address, optionally with :PORT "
            "(e.g. 10.0.0.5:5557, or 0.0.0.0:5557 for every address)"
        ) from None
    if not port_text:
        return host, LOCUST_MASTER_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"--master-bind {text!r}: the port must be from 1 to 65535")
    return host, int(port_text)


def _split_host_port(text: str) -> tuple[str, str]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, rest.removeprefix(":")
    if text.count(":") > 1:  # a bare IPv6 address: no port
        return text, ""
    host, _, port = text.partition(":")
    return host, port


def with_remote_load(spec: RunSpec, remote: RemoteLoad) -> RunSpec:
    """`spec` with its server and Locust master where `remote` says; ConfigError when the
    options cannot work together (workers elsewhere need both to be reachable)."""
    if remote == RemoteLoad():
        return spec
    server_host = _server_address(remote.server_host) if remote.server_host else spec.server.host
    refusal = exposure_error(server_host, remote.expose)
    if refusal:
        raise ConfigError(refusal.replace("--host", "--server-host", 1))
    master_host, master_port = (
        parse_master_bind(remote.master_bind) if remote.master_bind else ("127.0.0.1", None)
    )
    if not is_loopback_name(master_host) and not remote.expose:
        raise ConfigError(
            f"--master-bind {master_host} is beyond loopback: anyone who reaches that port can "
            "join the load as a Locust worker; add --expose on a network you trust"
        )
    if remote.remote_workers:
        _check_reachable(server_host, master_host)
    expected = spec.load.workers + remote.remote_workers
    if expected > spec.load.users:
        raise ConfigError(
            f"{expected} Locust workers (--load-workers and --expect-remote-workers) need at "
            f"least as many --users ({spec.load.users}): a worker without users sends nothing"
        )
    if spec.target.cmd and not is_loopback_name(server_host):
        raise ConfigError(
            "--server-host applies to the stair-stepper and --app; a --cmd binds its own "
            "address ({host} in the command)"
        )
    changes = {
        "server.host": server_host,
        "server.expose": not is_loopback_name(server_host),
        "load.master_host": master_host,
        "load.master_port": master_port,
        "load.remote_workers": remote.remote_workers,
    }
    return spec.with_(**changes)


def _server_address(text: str) -> str:
    """A --server-host: one IP address of this machine (it is also where the load goes, so not
    0.0.0.0)."""
    if is_loopback_name(text):
        return "127.0.0.1" if text.lower() == "localhost" else text
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(
            f"--server-host {text!r}: expected an IP address of this machine, e.g. 10.0.0.5"
        ) from None
    if address.is_unspecified:
        raise ConfigError(
            f"--server-host {text}: the load is sent to this address, so it must be one "
            "address of this machine, e.g. 10.0.0.5, not every address"
        )
    return text


def _check_reachable(server_host: str, master_host: str) -> None:
    """Workers on other machines send load to the server and report to the master: neither
    may be on loopback."""
    if is_loopback_name(master_host):
        raise ConfigError(
            "--expect-remote-workers needs a master that workers on other machines reach: "
            "give --master-bind ADDRESS:PORT with this machine's address on their network"
        )
    if is_loopback_name(server_host):
        raise ConfigError(
            "--expect-remote-workers needs a server that workers on other machines reach: "
            "give --server-host with this machine's address on their network, and --expose"
        )
