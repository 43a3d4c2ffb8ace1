"""benchmarks/real_cases/manifest.py: a case's manifest read into a Case, and what is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks.real_cases import manifest
from benchmarks.real_cases.manifest import Case, ManifestError

LOAD = {"tags": "t", "users": 2, "rate": 1, "duration": 5}
CASES = Path(__file__).resolve().parents[3] / "benchmarks" / "real_cases" / "cases"


def data(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "lib-leak",
        "summary": "lib 1.0 leaks",
        "sources": ["https://github.com/o/lib/issues/1"],
        "package": "lib",
        "buggy": "1.0",
        "fixed": "1.1",
        "truth": "leak",
        "why": "the maintainer said so",
        "server": ["uvicorn==0.30.6"],
        "load": {"tags": "t", "users": 2, "rate": 10, "duration": 5},
    }
    base.update(changes)
    return base


def test_a_manifest_becomes_a_case_with_the_load_options_of_sandbox_run() -> None:
    case = manifest.parse(data(), Path("/cases/lib-leak"))
    assert case.name == "lib-leak" and case.fixed == "1.1" and case.app == "app:app"
    assert case.load.options() == [
        "--load", "rate", "--tags", "t", "--users", "2", "--rate", "10", "--duration", "5",
        "--batches", "3", "--pause", "2", "--baseline", "3", "--idle", "5", "--trim", "3",
    ]  # fmt: skip


def test_collect_garbage_is_passed_on_when_asked() -> None:
    load = {"tags": "t", "users": 1, "rate": 1.5, "duration": 5, "collect_garbage": True}
    case = manifest.parse(data(load=load), Path("/c"))
    assert case.load.options()[-1] == "--collect-garbage"
    assert "1.5" in case.load.options()


def test_the_fixed_version_runs_too_and_its_truth_is_little_growth() -> None:
    assert manifest.parse(data(), Path("/c")).versions() == [("1.0", "leak"), ("1.1", "little")]
    assert manifest.parse(data(fixed=None), Path("/c")).versions() == [("1.0", "leak")]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"truth": "bug"}, "'truth' must be one of leak, native, cycles, cache, allocator"),
        ({"truth": "little"}, "'truth' must be one of"),
        ({"sources": []}, "'sources' must be a non-empty list of strings"),
        ({"sources": ["http://x"]}, "every source must be an https:// URL"),
        ({"buggy": 1.0}, "'buggy' must be a str, not 1.0"),
        ({"load": {**LOAD, "speed": 3}}, "unknown key 'speed'"),
        ({"load": {**LOAD, "users": True}}, "'users' must be a int"),
        ({"advise": {"budget": "5m"}}, "'advise' is for a case whose truth is 'allocator'"),
        ({"truth": "allocator", "advise": {"arms": ["glibc"]}}, "names arms but no 'budget'"),
        ({"truth": "allocator", "advise": {"budget": "5m", "arms": []}}, "'arms' must be"),
    ],
)  # fmt: skip
def test_a_bad_manifest_is_refused_naming_its_file_and_key(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ManifestError, match=r"^/c/case.yml") as e:
        manifest.parse(data(**changes), Path("/c"))
    assert message in str(e.value)


def test_an_allocator_case_may_name_the_arms_of_its_race() -> None:
    advise = {"budget": "9m", "arms": ["glibc", "glibc-arena2"]}
    case = manifest.parse(data(truth="allocator", advise=advise), Path("/c"))
    assert case.advise_budget == "9m" and case.advise_arms == ("glibc", "glibc-arena2")
    assert manifest.parse(data(), Path("/c")).advise_arms == ()


def test_a_missing_key_is_named() -> None:
    values = data()
    del values["package"]
    with pytest.raises(ManifestError, match="missing key 'package'"):
        manifest.parse(values, Path("/c"))


def test_cases_are_read_from_their_folders_and_names_must_be_unique(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / manifest.MANIFEST).write_text(yaml.safe_dump(data(name=folder)))
    assert [c.name for c in manifest.load_cases(tmp_path)] == ["a", "b"]
    (tmp_path / "b" / manifest.MANIFEST).write_text(yaml.safe_dump(data(name="a")))
    with pytest.raises(ManifestError, match="two cases are named 'a'"):
        manifest.load_cases(tmp_path)


def test_a_manifest_that_is_not_yaml_says_so(tmp_path: Path) -> None:
    (tmp_path / manifest.MANIFEST).write_text("name: [unclosed\n")
    with pytest.raises(ManifestError, match="not valid YAML"):
        manifest.load_case(tmp_path)


def test_the_corpus_itself_reads_and_covers_every_truth() -> None:
    cases: list[Case] = manifest.load_cases(CASES)
    assert len(cases) >= 8
    truths = {c.truth for c in cases}
    assert truths >= {manifest.LEAK, manifest.NATIVE, manifest.CYCLES, manifest.CACHE}
    assert manifest.ALLOCATOR in truths
    for case in cases:
        assert (case.folder / "app.py").exists() and (case.folder / "locustfile.py").exists()
