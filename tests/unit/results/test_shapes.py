from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from sandbox.results.shapes import (
    MAX_INT64,
    Mismatch,
    describe,
    empty_when_none,
    flattened,
    from_plain,
    omitted_when_empty,
    omitted_when_none,
    read,
    read_also,
    to_plain,
)


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
        read(value, hint, "k")
    return str(info.value)


def test_fields_are_read_by_their_annotation_and_unknown_keys_ignored() -> None:
    data = {"kind": "a", "inner": {"n": 1}, "path": "x", "columns": {"t": [0, 0.5]}, "new": 1}
    read_back = from_plain(Outer, {**data, "tags": ["x", "y"]})
    assert read_back == Outer("a", Inner(1), Path("x"), {"t": [0, 0.5]}, ("x", "y"))
    assert to_plain(read_back) == {**{k: v for k, v in data.items() if k != "new"},
                                   "inner": {"n": 1, "label": None}, "tags": ["x", "y"],
                                   "extra": None}  # fmt: skip
    with pytest.raises(Mismatch) as info:
        from_plain(Outer, {"kind": "a", "inner": {"n": "1"}})
    assert str(info.value) == "inner.n has value '1'; expected a whole number"
    assert info.value.key == "inner.n"
    with pytest.raises(Mismatch, match=r"^path is missing$"):
        from_plain(Outer, {"kind": "a", "inner": {"n": 1}})
    with pytest.raises(Mismatch, match=r"^Inner has value \[1\]; expected a mapping$"):
        from_plain(Inner, [1])


@dataclass(frozen=True)
class Quirks:
    """Every per-field hook, and both per-class ones."""

    version: str | None = field(default=None, metadata=read_also("old_version"))
    figure: float | None = None
    unit: str | None = field(default=None, metadata=omitted_when_none(of="figure"))
    note: str | None = field(default=None, metadata=omitted_when_none())
    inner: Inner | None = field(default=None, metadata=empty_when_none())
    earlier: tuple[str, ...] = field(default=(), metadata=omitted_when_empty())
    flat: Inner = field(default=Inner(0), metadata=flattened())

    def on_disk(self, plain: dict[str, Any]) -> dict[str, Any]:
        return {"format": "quirks", **plain}

    @classmethod
    def from_disk(cls, data: Any, where: str) -> Any:
        version = data.get("version")
        return {**data, "version": version.upper()} if isinstance(version, str) else data


def test_each_hook_writes_its_quirk_and_reads_it_back() -> None:
    bare = Quirks()
    assert to_plain(bare) == {"format": "quirks", "version": None, "figure": None, "inner": {},
                              "n": 0, "label": None}  # fmt: skip
    assert from_plain(Quirks, to_plain(bare)) == bare
    full = Quirks("V1", 2.5, "MiB", "n", Inner(3), ("a",), Inner(4, "x"))
    written = to_plain(full)
    assert list(written) == ["format", "version", "figure", "unit", "note", "inner", "earlier",
                             "n", "label"]  # fmt: skip
    assert from_plain(Quirks, written) == full
    assert from_plain(Quirks, {"old_version": "v0", "n": 0}).version == "v0"  # not from_disk's
    assert from_plain(Quirks, {"version": "v2", "n": 0}).version == "V2"
    with pytest.raises(Mismatch, match=r"^n is missing$"):
        from_plain(Quirks, {})


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
        read(1, complex, "k")
