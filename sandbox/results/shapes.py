"""Does a value read from JSON have the type that a dataclass field declares?

A result file is read into typed sections; a wrong type anywhere (a string where a number
belongs, `samples: [1, 2]`, a huge integer) is named here, with its key and what was expected,
instead of failing later deep in the analysis. The field's annotation is the schema: int, float,
str, bool, None, Literal, unions, list / tuple / dict of those, Path (a string on disk), Any,
and nested dataclasses (a mapping on disk).
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from sandbox.config.values import shown

MAX_INT64 = 2**63 - 1
"""Whole numbers in a result are counts and bytes: a signed 64-bit integer holds them all."""


class Mismatch(ValueError):
    """A value has the wrong type; `key` says where (`samples.rss_bytes[3]`)."""

    def __init__(self, key: str, value: Any, expected: str) -> None:
        super().__init__(f"{key} has value {shown(value)}; expected {expected}")
        self.key = key


_FIELD_TYPES: dict[type, dict[str, Any]] = {}


def field_types(cls: type) -> dict[str, Any]:
    """The resolved annotations of a dataclass's fields (resolved once per class)."""
    if cls not in _FIELD_TYPES:
        hints = typing.get_type_hints(cls)
        _FIELD_TYPES[cls] = {f.name: hints[f.name] for f in fields(cls)}
    return _FIELD_TYPES[cls]


def check_fields(cls: type, data: Mapping[str, Any], where: str = "") -> None:
    """Check each key of `data` that names a field of the dataclass `cls` (others are ignored:
    newer writers may add keys); raise Mismatch naming the first wrong one."""
    for name, hint in field_types(cls).items():
        if name in data:
            check(data[name], hint, f"{where}{name}")


def check(value: Any, hint: Any, key: str) -> None:
    """Raise Mismatch when `value` does not have the type `hint`."""
    if hint is Any:
        return
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        for option in args:
            try:
                check(value, option, key)
                return
            except Mismatch as exc:
                if exc.key != key:  # the right shape, wrong inside: that is the error
                    raise
        raise Mismatch(key, value, describe(hint))
    if origin is typing.Literal:
        if value not in args or isinstance(value, bool) != any(isinstance(a, bool) for a in args):
            raise Mismatch(key, value, describe(hint))
        return
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, list | tuple):
            raise Mismatch(key, value, "a list")
        item = args[0] if args else Any
        if _all_numbers(value, item):
            return
        for i, v in enumerate(value):
            check(v, item, f"{key}[{i}]")
        return
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise Mismatch(key, value, "a mapping")
        item = args[1] if len(args) == 2 else Any
        for k, v in value.items():
            if not isinstance(k, str):
                raise Mismatch(key, k, "a mapping with string keys")
            check(v, item, f"{key}.{k}")
        return
    if isinstance(hint, type) and is_dataclass(hint):
        if isinstance(value, hint):
            return
        if not isinstance(value, Mapping):
            raise Mismatch(key, value, "a mapping")
        check_fields(hint, value, f"{key}.")
        return
    if not _scalar_ok(value, hint):
        raise Mismatch(key, value, describe(hint))


_NUMBER_HINTS: dict[Any, set[type]] = {float: {int, float}, int: {int}}


def _all_numbers(values: list[Any] | tuple[Any, ...], hint: Any) -> bool:
    """A fast yes for a long column of numbers of type `hint` (a no is checked item by item)."""
    options = typing.get_args(hint) if typing.get_origin(hint) is types.UnionType else (hint,)
    allowed: set[type] = set()
    for option in options:
        allowed |= _NUMBER_HINTS.get(option, set())
    kinds = set(map(type, values))
    if not values or not allowed or not kinds <= allowed:
        return False
    if int in kinds and not -MAX_INT64 <= min(values) <= max(values) <= MAX_INT64:
        return False  # first: isfinite cannot take an int too big for a float
    return float not in kinds or all(map(math.isfinite, values))


def _scalar_ok(value: Any, hint: Any) -> bool:
    if hint is None or hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_INT64
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return abs(value) <= MAX_INT64 if isinstance(value, int) else math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if hint is Path:
        return isinstance(value, str | Path)
    raise TypeError(f"json_shapes cannot check the type {hint!r}")  # a new field type: add it


def describe(hint: Any) -> str:
    """What a value of type `hint` looks like, in words."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        words = [describe(a) for a in args if a is not type(None)]
        if float in args and int in args:  # a number covers whole numbers
            words.remove(describe(int))
        if type(None) in args:
            words.append("null")
        return " or ".join(dict.fromkeys(words))
    if origin is typing.Literal:
        return "one of: " + ", ".join(map(str, args))
    if origin in (list, tuple):
        return "a list"
    if origin in (dict, Mapping) or (isinstance(hint, type) and is_dataclass(hint)):
        return "a mapping"
    names = {
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        str: "a string",
        Path: "a path (a string)",
        type(None): "null",
    }
    return names.get(hint, str(hint))
