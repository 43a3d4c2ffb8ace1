"""The value checks behind every setting: what each accepts, and the expectation it names."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.config import values as checks


def expectation(check: checks.Check, value: Any) -> str:
    with pytest.raises(checks.Invalid) as info:
        check(value)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2GiB", 2 * 1024**3), ("800MiB", 800 * 1024**2), ("1.5G", 1_500_000_000), (1234, 1234)],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert checks.parse_size(text) == expected


SIZES = "such as 2GiB, 800MiB or 1500000000"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("lots", f"a size {SIZES}"),
        ("5iB", f"a size {SIZES}"),  # a binary prefix needs its letter
        ("1 iB", f"a size {SIZES}"),
        ("\u0661\u0662MB", f"a size {SIZES}"),  # Arabic-Indic digits are not ASCII digits
        ("1e9", f"a size {SIZES}"),
        (True, f"a size {SIZES}"),
        ([1, 2], f"a size {SIZES}"),
        ("0MiB", f"a size of at least 1 byte, {SIZES} (leave it out for no limit)"),
        (0, f"a size of at least 1 byte, {SIZES} (leave it out for no limit)"),
        ("0.1B", f"a size of at least 1 byte, {SIZES} (leave it out for no limit)"),
        ("1" * 400, f"a size of at most 1 EiB, {SIZES}"),
        (10**400, f"a size of at most 1 EiB, {SIZES}"),
        ("1025PiB", f"a size {SIZES}"),
    ],
)
def test_parse_size_refuses_with_the_expectation(value: Any, expected: str) -> None:
    assert expectation(checks.parse_size, value) == expected


def test_parse_size_edges() -> None:
    assert checks.parse_size("1.5 KiB") == 1536
    assert checks.parse_size("2gb") == 2_000_000_000
    assert checks.parse_size("1.9B") == 1  # whole bytes, rounded down
    assert checks.parse_size(1.5e9) == 1_500_000_000  # YAML reads 1.5e9 as a float
    assert checks.parse_size("1048576TiB") == checks.MAX_SIZE_BYTES


def test_whole_numbers_and_numbers_have_an_upper_bound() -> None:
    assert expectation(checks.whole(1), 2**31) == "a whole number from 1 to 2147483647"
    assert expectation(checks.number(0), 10**400) == "a number >= 0 and <= 1e+09"
    assert expectation(checks.number(0), 1e10) == "a number >= 0 and <= 1e+09"
    assert expectation(checks.number(0), -(10**400)) == "a number >= 0"
    assert checks.number(0)(10**9) == 1e9


@pytest.mark.parametrize("name", ["glibc", "jemalloc-narenas2", "tc_malloc.v2", "a" * 64, "1"])
def test_allocator_names_that_can_be_file_names(name: str) -> None:
    assert checks.allocator_name(name) == name


@pytest.mark.parametrize(
    "name", ["", ".hidden", "../x", "a/b", "a b", "a" * 65, "\u00fcn\u00ef", "x\0", 5, None]
)
def test_allocator_names_that_cannot(name: Any) -> None:
    assert expectation(checks.allocator_name, name) == (
        "a name of letters, digits, '.', '_' and '-' (not starting with '.'), at most 64 "
        "characters, e.g. jemalloc-narenas2"
    )


def test_shown_cuts_long_values() -> None:
    assert checks.shown("abc") == "'abc'"
    assert checks.shown([[[[1]]]] * 40) == repr([[[[1]]]] * 40)[:57] + "..."


def test_whole_numbers_are_ints_not_bools() -> None:
    assert checks.whole(1)(3) == 3
    assert expectation(checks.whole(1), True) == "a whole number >= 1"
    assert expectation(checks.whole(1), 0) == "a whole number >= 1"
    assert expectation(checks.whole(0), 2.0) == "a whole number >= 0"


def test_numbers_become_floats_and_strict_excludes_the_minimum() -> None:
    assert checks.number(0)(0) == 0.0 and isinstance(checks.number(0)(2), float)
    assert expectation(checks.number(0, strict=True), 0) == "a number > 0"
    assert expectation(checks.number(0.001), float("nan")) == "a number >= 0.001"
    assert checks.optional_number(0)(None) is None


def test_booleans_read_on_off_and_yes_no() -> None:
    assert [checks.boolean(v) for v in (True, "on", "Yes", "off", "false")] == [
        True,
        True,
        True,
        False,
        False,
    ]
    assert expectation(checks.boolean, 1) == "true or false (on/off)"


def test_tag_lists_name_their_examples() -> None:
    tags = checks.tag_list(("tiny", "large"))
    assert tags("tiny, large,tiny") == ("tiny", "large")
    assert tags(["a.b", "c-d"]) == ("a.b", "c-d")
    assert expectation(tags, "ti ny") == "a list of plan tags such as tiny, large"
    assert expectation(tags, []) == "a list of plan tags such as tiny, large"


def test_loopback_checks() -> None:
    assert checks.is_loopback("127.0.0.2") and checks.is_loopback("::1")
    assert not checks.is_loopback("10.0.0.5") and not checks.is_loopback("example.com")
    assert checks.is_loopback_url("http://localhost:3000/")
    assert checks.loopback_host("localhost") == "127.0.0.1"
    assert checks.ready_url("http://{host}:{port}/ready") == "http://{host}:{port}/ready"
    assert expectation(checks.ready_url, "http://example.com/") == (
        "an http:// URL on this machine, e.g. http://127.0.0.1:{port}/health"
    )


def test_apps_are_module_colon_attribute() -> None:
    assert checks.asgi_app("examples.cache_service.app:app") == "examples.cache_service.app:app"
    assert checks.asgi_app(None) is None
    assert expectation(checks.asgi_app, "app.py") == (
        "an ASGI app as module:attribute, e.g. examples.cache_service.app:app"
    )
