"""Typed dataclasses as plain JSON values and back: the one serialisation of every result section,
and the one shape check of JSON read back (result files, checkpoints, manifests, agent replies).

A dataclass's annotations are its schema. `to_plain` writes its fields by name, in their order;
`from_plain` checks each value against its field's type and builds it, naming the first wrong
value with its key and what was expected (`samples.rss_bytes[3] has value 'x'; expected a
number`), instead of failing later deep in the analysis. Types: int, float, str, bool, None,
Literal, unions, list / tuple / dict of those, Path (a string on disk), Any, and nested
dataclasses (a mapping on disk). Keys a reader does not know are ignored (newer writers add keys).

The on-disk quirks of older formats are hooks, declared where they apply:
- per field, as `dataclasses.field(metadata=...)`: `omitted_when_none()` (the key is left out
  while the value, or another field's, is None), `omitted_when_empty()` (while it is empty),
  `empty_when_none()` (None is written as `{}`), `read_also(...)` (an older key read for the
  field) and `flattened()` (a nested dataclass whose keys are its parent's);
- per class: a method `on_disk(self, plain) -> dict` that rearranges the written mapping, and a
  classmethod `from_disk(cls, data, where) -> Mapping` that undoes it before reading (and checks
  what it reads itself, naming keys after `where`).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sandbox.config.values import shown

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

MAX_INT64 = 2**63 - 1
"""Whole numbers in a result are counts and bytes: a signed 64-bit integer holds them all."""


class Mismatch(ValueError):
    """A value has the wrong type, or a key is missing; `key` says where
    (`samples.rss_bytes[3]`)."""

    def __init__(self, key: str, value: Any, expected: str) -> None:
        super().__init__(f"{key} has value {shown(value)}; expected {expected}")
        self.key = key


class Missing(Mismatch):
    """A field without a default has no key, or the values together make no section (`reason`
    says why)."""

    def __init__(self, key: str, reason: str = "is missing") -> None:
        ValueError.__init__(self, f"{key} {reason}")
        self.key = key


_NONE = "sandbox.none"
_NONE_OF = "sandbox.none_of"
_ALSO = "sandbox.read_also"
_FLAT = "sandbox.flat"


def omitted_when_none(of: str | None = None) -> dict[str, Any]:
    """Field metadata: the key is left out while the value (or the field `of`) is None; for keys
    added after their format, so that older files write back as they were read."""
    return {_NONE: "omitted", _NONE_OF: of}


def omitted_when_empty() -> dict[str, Any]:
    """Field metadata: the key is left out while the value is empty (or None)."""
    return {_NONE: "omitted_empty", _NONE_OF: None}


def empty_when_none() -> dict[str, Any]:
    """Field metadata: an optional section written as `{}` when None (and `{}` read as None)."""
    return {_NONE: "empty", _NONE_OF: None}


def flattened() -> dict[str, Any]:
    """Field metadata: a nested dataclass whose keys are its parent's on disk."""
    return {_FLAT: True}


def read_also(*keys: str) -> dict[str, Any]:
    """Field metadata: older files wrote the field under these keys, read when its own is
    absent."""
    return {_ALSO: keys}


def to_plain(value: Any) -> Any:
    """`value` as JSON values: dataclasses as mappings of their fields, tuples as lists, paths
    as strings."""
    if is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in fields(value):
            item = getattr(value, f.name)
            rule = f.metadata.get(_NONE)
            if rule == "omitted" and getattr(value, f.metadata[_NONE_OF] or f.name) is None:
                continue
            if rule == "omitted_empty" and not item:
                continue
            if f.metadata.get(_FLAT):
                out.update(to_plain(item))
            else:
                out[f.name] = {} if item is None and rule == "empty" else to_plain(item)
        on_disk = getattr(value, "on_disk", None)
        return on_disk(out) if on_disk is not None else out
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


_FIELD_TYPES: dict[type, dict[str, Any]] = {}


def _field_types(cls: type) -> dict[str, Any]:
    """The resolved annotations of a dataclass's fields (resolved once per class)."""
    if cls not in _FIELD_TYPES:
        hints = typing.get_type_hints(cls)
        _FIELD_TYPES[cls] = {f.name: hints[f.name] for f in fields(cls)}
    return _FIELD_TYPES[cls]


def from_plain(cls: type[T], data: Any, where: str = "") -> T:
    """The dataclass `cls` read from the mapping `data` (its `from_disk` applied first); keys
    it does not know are ignored. Raises Mismatch naming the first wrong or missing value, its
    key prefixed with `where`."""
    if not isinstance(data, Mapping):
        raise Mismatch(where.rstrip(".") or cls.__name__, data, "a mapping")
    from_disk = getattr(cls, "from_disk", None)
    if from_disk is not None:
        data = from_disk(data, where)
    hints = _field_types(cls)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        key = next((k for k in (f.name, *f.metadata.get(_ALSO, ())) if k in data), None)
        if f.init and f.metadata.get(_FLAT):
            kwargs[f.name] = from_plain(hints[f.name], data, where)
        if not f.init or key is None or f.name in kwargs:
            continue
        value = data[key]
        if value == {} and f.metadata.get(_NONE) in ("omitted", "empty"):
            kwargs[f.name] = None
        else:
            kwargs[f.name] = read(value, hints[f.name], f"{where}{f.name}")
    for f in fields(cls):
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.init and no_default and f.name not in kwargs:
            raise Missing(f"{where}{f.name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise Missing(where.rstrip(".") or cls.__name__, f"is refused: {exc}") from None


def read(value: Any, hint: Any, key: str) -> Any:
    """`value` as the type `hint` (a tuple for a tuple, a Path for a Path, a dataclass built from
    its mapping); Mismatch when it does not have that type."""
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        for option in args:
            try:
                return read(value, option, key)
            except Mismatch as exc:
                if exc.key != key:  # the right shape, wrong inside: that is the error
                    raise
        raise Mismatch(key, value, describe(hint))
    if origin is typing.Literal:
        if value not in args or isinstance(value, bool) != any(isinstance(a, bool) for a in args):
            raise Mismatch(key, value, describe(hint))
        return value
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, list | tuple):
            raise Mismatch(key, value, "a list")
        item = args[0] if args else Any
        if _all_numbers(value, item):
            items = list(value)
        else:
            items = [read(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if tuple in (origin, hint) else items
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise Mismatch(key, value, "a mapping")
        item = args[1] if len(args) == 2 else Any
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise Mismatch(key, k, "a mapping with string keys")
            out[k] = read(v, item, f"{key}.{k}")
        return out
    if isinstance(hint, type) and is_dataclass(hint):
        if isinstance(value, hint):
            return value
        return from_plain(hint, value, f"{key}.")
    if not _scalar_ok(value, hint):
        raise Mismatch(key, value, describe(hint))
    return Path(value) if hint is Path else value


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
    raise TypeError(f"shapes cannot check the type {hint!r}")  # a new field type: add it


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
