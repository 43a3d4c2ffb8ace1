from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from sandbox.results.shapes import MAX_INT64, Mismatch, check, check_fields, describe


@dataclass(frozen=True)
class Inner:
    n: int
    label: str | None = None


@dataclass(frozen=True)
class Outer:
    kind: Literal["a", "b", 1]
    inner: Inner
    path: Path
    columns: dict[str, list[float | int]] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    extra: Any = None


def mismatch(value: Any, hint: Any) -> str:
    with pytest.raises(Mismatch) as info:
        check(value, hint, "k")
    return str(info.value)


def test_fields_are_checked_by_their_annotation_and_unknown_keys_ignored() -> None:
    check_fields(
        Outer,
        {"kind": "a", "inner": {"n": 1}, "path": "x", "columns": {"t": [0, 0.5]}, "new": 1},
    )
    with pytest.raises(Mismatch) as info:
        check_fields(Outer, {"kind": "a", "inner": {"n": "1"}})
    assert str(info.value) == "inner.n has value '1'; expected a whole number"
    assert info.value.key == "inner.n"


@pytest.mark.parametrize(
    ("value", "hint", "message"),
    [
        (True, int, "k has value True; expected a whole number"),
        (MAX_INT64 + 1, int, f"k has value {MAX_INT64 + 1}; expected a whole number"),
        (float("inf"), float, "k has value inf; expected a number"),
        (True, Literal["a", 1], "k has value True; expected one of: a, 1"),
        ("c", Literal["a", 1], "k has value 'c'; expected one of: a, 1"),
        (3, str | None, "k has value 3; expected a string or null"),
        ({1: "x"}, dict[str, str], "k has value 1; expected a mapping with string keys"),
        ([1, "x"], list[float | int], "k[1] has value 'x'; expected a number"),
        ([1, 2**64], list[float | int], f"k[1] has value {2**64}; expected a number"),
        ([0.5, 2**64], list[float | int], f"k[1] has value {2**64}; expected a number"),
        ("ab", tuple[str, ...], "k has value 'ab'; expected a list"),
        ([[1]], list[float] | None, "k[0] has value [1]; expected a number"),
    ],
)
def test_mismatches_name_the_key_and_the_expectation(value: Any, hint: Any, message: str) -> None:
    assert mismatch(value, hint) == message


def test_long_values_are_cut_in_the_message() -> None:
    assert mismatch("x" * 100, int) == f"k has value '{'x' * 56}...; expected a whole number"


def test_describe() -> None:
    assert describe(float | int | None) == "a number or null"
    assert describe(Inner) == "a mapping"
    assert describe(Path) == "a path (a string)"


def test_a_type_it_cannot_check_is_a_bug_not_a_pass() -> None:
    with pytest.raises(TypeError, match="cannot check the type"):
        check(1, complex, "k")
