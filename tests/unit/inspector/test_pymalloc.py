"""Parsing CPython's `_PyObject_DebugMallocStats` report."""

from __future__ import annotations

from pathlib import Path

from sandbox.inspector import pymalloc
from sandbox.inspector.pymalloc import Pymalloc

DATA = Path(__file__).resolve().parents[2] / "data"


def test_parse_a_real_report() -> None:
    text = (DATA / "pymalloc_stats_3.11.txt").read_text()
    assert pymalloc.parse(text) == Pymalloc(
        arenas=3,
        arena_bytes=3_145_728,
        allocated_bytes=2_192_432,
        available_bytes=296_560,
        highwater_arenas=3,
    )


def test_parse_without_the_figures_is_none() -> None:
    assert pymalloc.parse("") is None
    assert pymalloc.parse("# arenas allocated current = 3\n") is None


def test_to_dict() -> None:
    assert Pymalloc(2, 2 << 20, 100, 50).to_dict() == {
        "arenas": 2,
        "arena_bytes": 2 << 20,
        "allocated_bytes": 100,
        "available_bytes": 50,
        "highwater_arenas": None,
    }
