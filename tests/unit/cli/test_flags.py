"""The flag <-> setting table: the options it makes, and the flags config's messages name."""

from __future__ import annotations

import click
import pytest

from sandbox.cli import flags
from sandbox.cli.flags import Flag
from sandbox.cli.main import cli
from sandbox.config import settings as config
from sandbox.config.flag_names import FLAG_NAMES, flag_for
from sandbox.errors import ConfigError

RUN_FLAGS = {
    name
    for p in cli.commands["run"].params
    if isinstance(p, click.Option)
    for name in p.opts + p.secondary_opts
}


def error_of(**options: object) -> str:
    with pytest.raises(ConfigError) as info:
        config.build_spec(config.load_benchmark(None), config.validate_overrides("option", options))
    assert info.value.exit_code == 2
    return str(info.value)


@pytest.mark.parametrize(
    ("command", "table"),
    [("run", flags.RUN), ("serve", flags.SERVE), ("experiment", flags.EXPERIMENT)],
)
def test_each_command_has_its_tables_options_in_order(
    command: str, table: tuple[Flag, ...]
) -> None:
    options = [p for p in cli.commands[command].params if isinstance(p, click.Option)]
    assert [(p.name, p.opts[0]) for p in options] == [(f.param, f.name) for f in table]


def test_every_setting_flag_names_a_setting_once() -> None:
    settings = [f.setting for f in flags.RUN if f.setting]
    assert set(settings) <= set(config.SETTINGS)
    assert len(settings) == len(set(settings))
    serve = [f.setting for f in flags.SERVE if f.setting]
    assert set(serve) <= set(settings)


def test_flag_for() -> None:
    assert flag_for("pause_s") == "--pause"
    assert flag_for("concurrency") == "--users"
    assert flag_for("workers") == "--server-workers"
    assert flag_for("batch_timeout_s") is None  # benchmark.yml only


def test_every_spelling_in_the_table_is_a_flag_of_run() -> None:
    assert {f.setting: f.name for f in flags.RUN if f.setting} == FLAG_NAMES


def test_serve_keeps_its_own_defaults() -> None:
    serve = cli.commands["serve"].make_context("serve", []).params
    assert (serve["allocator"], serve["host"], serve["port"]) == ("glibc", "127.0.0.1", 3000)
    assert serve["pymalloc"] == "on"
    run = cli.commands["run"].make_context("run", []).params
    assert (run["allocator"], run["port"], run["pymalloc"]) == (None, None, None)
    assert (run["objects"], run["compress"], run["thresholds"]) == (None, False, ())


# --- messages name flags that exist ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(config.SETTINGS))
def test_a_bad_option_value_names_its_flag_or_its_key(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.validate_overrides("option", {name: object()})  # no setting takes an object
    flag = flag_for(name)
    assert str(info.value).startswith(f"{flag or config.SETTINGS[name].key} has value ")
    if flag is not None:
        assert flag in RUN_FLAGS


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("concurrency", 0, "--users has value 0; expected a whole number >= 1"),
        ("workers", 0, "--server-workers has value 0; expected a whole number >= 1"),
        ("pause_s", -1, "--pause has value -1; expected a number >= 0"),
        ("batch_timeout_s", 0, "run.batch_timeout_s has value 0; expected a number > 0"),
        ("leak_bytes", "1e3", "--leak has value '1e3'; expected a size such as 30KiB, or 0 (off)"),
        ("leak_kind", "tiny", "--leak-kind has value 'tiny'; expected one of: small, large"),
        ("cache_docs", -1, "--cache-docs has value -1; expected a whole number >= 0"),
        ("pin_objects", True, "--pin-objects has value True; expected a whole number >= 0"),
    ],
)
def test_option_messages_name_the_real_flag(name: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.validate_overrides("option", {name: value})
    assert str(info.value) == message


def test_the_spike_users_message_names_the_users_setting_and_flag() -> None:
    assert error_of(load="spike", rate=5.0, concurrency=2, duration_s=60) == (
        "concurrency (--users): the spike model needs at least spike_x (5) users, "
        "one for the baseline and spike_x for the burst"
    )


def test_a_load_model_message_names_the_key_and_the_flag() -> None:
    assert error_of(load="soak", duration_s=0) == (
        "run.duration_s (--duration): the soak model needs a duration > 0"
    )
    assert error_of(load="spike", rate=5.0, duration_s=10, spike_s=0) == (
        "run.spike_s (--spike-for): the burst needs a length > 0"
    )
