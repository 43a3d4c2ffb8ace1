from __future__ import annotations

import pytest

from sandbox.config.server_settings import ServerSettings
from sandbox.errors import ConfigError


def test_defaults() -> None:
    settings = ServerSettings.from_environ({})
    assert settings == ServerSettings()
    assert settings.handler == "sync"
    assert settings.sleep_ms == 150
    assert settings.threads == 40
    assert settings.max_body_bytes == 8 * 1024 * 1024
    assert (settings.leak_bytes, settings.leak_kind) == (0, "small")
    assert (settings.cache_docs, settings.pin_objects) == (0, 0)
    assert settings.truths is False


def test_reads_environment() -> None:
    environ = {"HANDLER": "async", "SLEEP_MS": "0", "THREADS": "3", "MAX_BODY_BYTES": " 1000 "}
    settings = ServerSettings.from_environ(environ)
    assert settings == ServerSettings("async", 0, 3, 1000)


def test_reads_the_truths() -> None:
    environ = {"LEAK_BYTES": "30720", "LEAK_KIND": "large", "CACHE_DOCS": "300"}
    settings = ServerSettings.from_environ({**environ, "PIN_OBJECTS": "2000"})
    assert settings == ServerSettings(
        leak_bytes=30720, leak_kind="large", cache_docs=300, pin_objects=2000
    )
    assert settings.truths is True


@pytest.mark.parametrize("name", ["leak_bytes", "cache_docs", "pin_objects"])
def test_each_truth_alone_turns_the_truths_on(name: str) -> None:
    assert ServerSettings(**{name: 1}).truths is True  # type: ignore[arg-type]
    assert ServerSettings(leak_kind="large").truths is False  # a kind is no leak


def test_round_trip() -> None:
    settings = ServerSettings("async", 450, 16, 2048, 4096, "large", 10, 100)
    assert settings.to_environ() == {
        "HANDLER": "async",
        "SLEEP_MS": "450",
        "THREADS": "16",
        "MAX_BODY_BYTES": "2048",
        "LEAK_BYTES": "4096",
        "LEAK_KIND": "large",
        "CACHE_DOCS": "10",
        "PIN_OBJECTS": "100",
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
        ("LEAK_BYTES", "30KiB", "LEAK_BYTES has value '30KiB'; expected a whole number >= 0"),
        ("LEAK_BYTES", "-1", "LEAK_BYTES has value '-1'; expected a whole number >= 0"),
        ("LEAK_KIND", "huge", "LEAK_KIND has value 'huge'; expected one of: small, large"),
        ("CACHE_DOCS", "x", "CACHE_DOCS has value 'x'; expected a whole number >= 0"),
        ("PIN_OBJECTS", "1e3", "PIN_OBJECTS has value '1e3'; expected a whole number >= 0"),
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
    with pytest.raises(ConfigError, match=r"^leak_kind has value 'big'; expected one of: small, "):
        ServerSettings(leak_kind="big")  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError, match=r"^pin_objects has value -4; expected a whole number >= 0$"
    ):
        ServerSettings(pin_objects=-4)
