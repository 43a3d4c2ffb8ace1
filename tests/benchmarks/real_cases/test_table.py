"""benchmarks/real_cases/table.py: how a verdict is scored against a case's truth, and the
tables (synthetic verdicts; no runs)."""

from __future__ import annotations

from benchmarks.real_cases import table
from benchmarks.real_cases.table import Outcome
from sandbox.analysis import verdict
from sandbox.analysis.verdict import Verdict


def said(kind: str, parts: tuple[str, ...] = ()) -> Verdict:
    return Verdict("glibc", f"... -> {kind}", kind, parts)


def test_a_verdict_naming_the_truth_is_right() -> None:
    assert table.score("leak", said(verdict.LEAK)) == table.RIGHT
    assert table.score("native", said(verdict.NATIVE)) == table.RIGHT
    assert table.score("cycles", said(verdict.CYCLES)) == table.RIGHT
    assert table.score("cache", said(verdict.CACHE)) == table.RIGHT
    assert table.score("allocator", said(verdict.FREE_KEPT)) == table.RIGHT
    assert table.score("allocator", said(verdict.PYMALLOC_FRAGMENTATION)) == table.RIGHT
    assert table.score("little", said(verdict.LITTLE_GROWTH)) == table.RIGHT


def test_saying_what_it_cannot_tell_is_not_counted_wrong() -> None:
    assert table.score("leak", said(verdict.CANNOT_TELL)) == table.CANNOT_TELL
    assert table.score("cache", said(verdict.LIVE)) == table.CANNOT_TELL


def test_another_class_is_wrong_and_no_result_is_its_own() -> None:
    assert table.score("native", said(verdict.LEAK)) == table.WRONG
    assert table.score("leak", said(verdict.NATIVE)) == table.WRONG
    assert table.score("little", said(verdict.FREE_KEPT)) == table.WRONG
    assert table.score("leak", None) == table.NO_RESULT


def test_a_mixed_verdict_is_right_when_the_truth_is_one_of_its_parts() -> None:
    mixed = said(verdict.MIXED, (verdict.CYCLES, verdict.PYMALLOC_FRAGMENTATION))
    assert table.score("cycles", mixed) == table.RIGHT
    assert table.score("allocator", mixed) == table.RIGHT
    assert table.score("leak", mixed) == table.WRONG


def outcomes() -> list[Outcome]:
    return [
        Outcome("a", "1.0", "leak", "glibc", said(verdict.LEAK), 61.0),
        Outcome("a", "1.1", "little", "glibc", said(verdict.LITTLE_GROWTH), 60.0),
        Outcome("b", "2.0", "native", "glibc", said(verdict.LEAK), 59.0),
        Outcome("a", "1.0", "leak", "jemalloc", said(verdict.LEAK), 62.0),
        Outcome("b", "2.0", "native", "jemalloc", None, 5.0, "sandbox run exited 1"),
    ]


def test_the_confusion_table_counts_each_truth_by_verdict_for_one_allocator() -> None:
    text = table.confusion(outcomes(), "glibc")
    lines = text.splitlines()
    assert lines[0].split("|")[1].strip() == "glibc: truth \\ verdict"
    rows = {line.split("|")[1].strip(): line for line in lines[2:5]}
    assert set(rows) == {"leak", "native", "little"}
    head = [c.strip() for c in lines[0].split("|")[1:-1]]
    native = [c.strip() for c in rows["native"].split("|")[1:-1]]
    assert native[head.index("leak")] == "1" and native[head.index("wrong")] == "1"
    assert text.endswith("glibc: 2/3 right, 0 cannot tell, 1 wrong")


def test_a_run_without_result_is_counted_as_such() -> None:
    text = table.confusion(outcomes(), "jemalloc")
    assert text.endswith("jemalloc: 1/2 right, 0 cannot tell, 0 wrong, 1 no result")


def test_the_per_case_table_has_a_row_per_version_and_a_column_per_allocator() -> None:
    lines = table.per_case(outcomes()).splitlines()
    assert [c.strip() for c in lines[0].split("|")[1:-1]] == [
        "case", "version", "truth", "glibc", "jemalloc",
    ]  # fmt: skip
    assert len(lines) == 2 + 3
    b = [c.strip() for c in lines[4].split("|")[1:-1]]
    assert b[:3] == ["b", "2.0", "native"]
    assert b[3] == "leak (wrong, 59 s)" and b[4] == "(no result) (no result, 5 s)"
    a_fixed = [c.strip() for c in lines[3].split("|")[1:-1]]
    assert a_fixed[4] == "-"
