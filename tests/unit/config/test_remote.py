"""Load from other machines: --server-host, --expose, --master-bind, --expect-remote-workers
checked together and set on the RunSpec; loopback without them."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.config import settings as config
from sandbox.config.remote import RemoteLoad, parse_master_bind, with_remote_load
from sandbox.config.run_spec import RunSpec
from sandbox.errors import ConfigError

REMOTE = RemoteLoad("10.0.0.5", True, "10.0.0.5:6000", 2)


def spec_with(**options: Any) -> RunSpec:
    return config.build_spec(
        config.load_benchmark(None), config.validate_overrides("option", options)
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.5:6000", ("10.0.0.5", 6000)),
        ("10.0.0.5", ("10.0.0.5", 5557)),
        ("0.0.0.0:5557", ("0.0.0.0", 5557)),
        ("[fd00::5]:6000", ("fd00::5", 6000)),
        ("fd00::5", ("fd00::5", 5557)),
    ],
)
def test_master_bind_reads_an_address_and_an_optional_port(
    text: str, expected: tuple[str, int]
) -> None:
    assert parse_master_bind(text) == expected


@pytest.mark.parametrize("text", ["master.example:5557", "10.0.0.5:0", "10.0.0.5:x", ":5557"])
def test_master_bind_refuses_names_and_bad_ports(text: str) -> None:
    with pytest.raises(ConfigError, match="--master-bind"):
        parse_master_bind(text)


def test_without_the_options_nothing_changes() -> None:
    spec = spec_with(concurrency=4)
    assert with_remote_load(spec, RemoteLoad()) is spec
    assert (spec.server.host, spec.server.expose) == ("127.0.0.1", False)
    assert (spec.load.master_host, spec.load.master_port, spec.load.remote_workers) == (
        "127.0.0.1",
        None,
        0,
    )


def test_remote_workers_bind_the_server_and_the_master_where_they_are_reached() -> None:
    spec = with_remote_load(spec_with(concurrency=4, load_workers=1), REMOTE)
    assert (spec.server.host, spec.server.expose) == ("10.0.0.5", True)
    assert (spec.load.master_host, spec.load.master_port) == ("10.0.0.5", 6000)
    assert (spec.load.remote_workers, spec.load.expected_workers) == (2, 3)
    assert spec.load == spec_with(concurrency=4, load_workers=1).load  # the result's load


@pytest.mark.parametrize(
    ("remote", "message"),
    [
        (RemoteLoad("10.0.0.5", False), "--server-host 10.0.0.5 is beyond loopback"),
        (RemoteLoad(master_bind="10.0.0.5:6000"), "--master-bind 10.0.0.5 is beyond loopback"),
        (RemoteLoad("10.0.0.5", True, None, 2), "needs a master that workers on other"),
        (RemoteLoad(None, True, "10.0.0.5", 2), "needs a server that workers on other"),
        (RemoteLoad("0.0.0.0", True), "not every address"),
        (RemoteLoad("server.example", True), "expected an IP address"),
        (RemoteLoad("10.0.0.5", True, "10.0.0.5", 5), "need at least as many --users"),
    ],
)
def test_options_that_cannot_work_are_refused(remote: RemoteLoad, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        with_remote_load(spec_with(concurrency=4), remote)


def test_a_command_binds_its_own_address() -> None:
    spec = spec_with(cmd="my-server --port {port}", ready_url="http://127.0.0.1:{port}/")
    with pytest.raises(ConfigError, match="a --cmd binds its own address"):
        with_remote_load(spec, RemoteLoad("10.0.0.5", True))


def test_loopback_master_on_a_fixed_port_needs_no_expose() -> None:
    spec = with_remote_load(spec_with(load_workers=2), RemoteLoad(master_bind="127.0.0.1:6000"))
    assert (spec.load.master_host, spec.load.master_port, spec.server.expose) == (
        "127.0.0.1",
        6000,
        False,
    )
