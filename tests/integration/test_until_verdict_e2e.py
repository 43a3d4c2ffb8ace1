"""`sandbox experiment --until-verdict` end to end: a tiny experiment capped at 3 repeats looks
once, says what it saw, stops, and records the look and the stop in its manifest."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sandbox.results import files as result_files
from tests.integration.conftest import run_sandbox

pytestmark = pytest.mark.e2e

EXPERIMENT = """\
name: e2e-until
description: glibc against itself, as small as a run gets, under the stopping rule
allocators: [glibc, glibc-again]
repeats: 2
baseline: glibc
iterations: 5
run:
  tags: [tiny]
  batches: 1
  baseline_s: 0.3
  idle_s: 0.5
custom_allocators:
  glibc-again:
    description: glibc malloc again, under a second label
"""


def until_verdict(tmp_path: Path, *flags: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The tiny experiment under the rule capped at 3 repeats (and `flags`); the run and its
    one folder of results."""
    experiment = tmp_path / "e2e-until.yml"
    experiment.write_text(EXPERIMENT)
    out = tmp_path / "results"
    done = run_sandbox(
        "experiment",
        str(experiment),
        "--until-verdict",
        "--max-repeats",
        "3",
        *flags,
        "--results-dir",
        str(out),
        timeout_s=180,
    )
    assert done.returncode == 0, done.stderr
    [folder] = out.iterdir()
    return done, folder


def test_until_verdict_looks_after_three_repeats_and_stops_at_the_cap(tmp_path: Path) -> None:
    done, folder = until_verdict(tmp_path)

    loaded = result_files.load_all([folder])
    assert len(loaded) == 6  # the file's repeats: 2 yields to the rule's 3
    assert {r.status for r in loaded} == {"ok"}
    manifest = json.loads((folder / "experiment.json").read_text())
    assert manifest["sequential"]["max_repeats"] == 3
    [look] = manifest["looks"]
    assert look["rounds"] == 3
    [seen] = look["comparisons"]
    assert (seen["group"], seen["reference"], seen["n"], seen["n_reference"]) == (
        "glibc-again",
        "glibc",
        3,
        3,
    )
    assert manifest["stop"]["rounds"] == 3
    summary = manifest["stop"]["summary"]
    assert summary.startswith("look 1 of 1 after 3 repeats (95.0% intervals): ")
    lines = done.stderr.splitlines()
    at = lines.index(summary)
    assert lines[at + 1].startswith("  glibc-again / glibc ")
    assert lines[at + 1].endswith(f"-> {seen['outcome']}")
    assert f"stopping rule: {summary} (looks in {folder / 'experiment.json'})" in done.stdout
