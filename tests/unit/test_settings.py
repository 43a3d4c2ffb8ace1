from __future__ import annotations

import pytest

from sandbox.errors import ConfigError
from sandbox.server_settings import ServerSettings


def test_defaults() -> None:
    settings = ServerSettings.from_environ({})
    assert settings == ServerSettings()
    assert settings.handler == "sync"
    assert settings.sleep_ms == 150
    assert settings.threads == 40
    assert settings.max_body_bytes == 8 * 1024 * 1024


def test_reads_environment() -> None:
    environ = {"HANDLER": "async", "SLEEP_MS": "0", "THREADS": "3", "MAX_BODY_BYTES": " 1000 "}
    settings = ServerSettings.from_environ(environ)
    assert settings == ServerSettings("async", 0, 3, 1000)


def test_round_trip() -> None:
    settings = ServerSettings("async", 450, 16, 2048)
    assert settings.to_environ() == {
        "HANDLER": "async",
        "SLEEP_MS": "450",
        "THREADS": "16",
        "MAX_BODY_BYTES": "2048",
    }
    assert ServerSettings.from_environ(settings.to_environ()) == settings


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("HANDLER", "x", "HANDLER has value 'x'; expected one of: sync, async"),
        ("HANDLER", "", "HANDLER has value ''; expected one of: sync, async"),
        ("SLEEP_MS", "abc", "SLEEP_MS has value 'abc'; expected a whole number >= 0"),
        ("SLEEP_MS", "-1", "SLEEP_MS has value '-1'; expected a whole number >= 0"),
        ("SLEEP_MS", "1.5", "SLEEP_MS has value '1.5'; expected a whole number >= 0"),
        ("SLEEP_MS", "", "SLEEP_MS has value ''; expected a whole number >= 0"),
        ("THREADS", "0", "THREADS has value '0'; expected a whole number >= 1"),
        ("THREADS", "many", "THREADS has value 'many'; expected a whole number >= 1"),
        ("MAX_BODY_BYTES", "0", "MAX_BODY_BYTES has value '0'; expected a whole number >= 1"),
        ("MAX_BODY_BYTES", "8M", "MAX_BODY_BYTES has value '8M'; expected a whole number >= 1"),
    ],
)
def test_bad_value(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        ServerSettings.from_environ({name: value})
    assert str(info.value) == message
    assert info.value.exit_code == 2


def test_constructor_validates() -> None:
    with pytest.raises(ConfigError, match=r"^threads has value 0; expected a whole number >= 1$"):
        ServerSettings(threads=0)
