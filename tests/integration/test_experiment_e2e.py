"""`sandbox experiment` end to end: four tiny runs, then the comparison and the plots."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from sandbox.allocators import registry as allocators
from sandbox.results import files as result_files
from tests.integration.browser import (
    LOOK,
    assert_self_contained,
    colours,
    find_chromium,
    headless_chromium,
)
from tests.integration.conftest import run_sandbox
from tests.integration.harness import REPO, SANDBOX, harness_env

pytestmark = pytest.mark.e2e


EXPERIMENT = """\
name: e2e-tiny
description: glibc vs jemalloc, as small as a run gets
allocators: [glibc, jemalloc]
repeats: 2
baseline: glibc
iterations: 10
run:
  tags: [tiny]
  batches: 1
  baseline_s: 0.5
  idle_s: 1
"""


def test_experiment_runs_compares_and_plots(tmp_path: Path) -> None:
    jemalloc = allocators.BUILTIN["jemalloc"]
    assert jemalloc.library is not None
    if allocators.find_library(jemalloc.library) is None:
        pytest.skip(f"{jemalloc.library} is missing: apt-get install {jemalloc.package}")
    experiment = tmp_path / "e2e-tiny.yml"
    experiment.write_text(EXPERIMENT)
    out = tmp_path / "results"

    done = run_sandbox("experiment", str(experiment), "--results-dir", str(out), timeout_s=180)

    assert done.returncode == 0, done.stderr
    [folder] = out.iterdir()
    assert folder.name.startswith("e2e-tiny-")
    loaded = result_files.load_all([folder])  # skips experiment.json and comparison.json
    assert len(loaded) == 4
    assert {r.status for r in loaded} == {"ok"}
    assert {r.experiment for r in loaded} == {"e2e-tiny"}
    others = {p.name for p in folder.iterdir()} - {f"{r.run_id}.json" for r in loaded}
    assert others == {
        "experiment.json",
        "comparison.md",
        "comparison.json",
        "report.html",
        *(
            f"{stem}.{ext}"
            for stem in ("rss", "rss-requests", "rss-allocator")
            for ext in ("png", "svg")
        ),
    }
    for name in others:
        assert (folder / name).stat().st_size > 0, name
    assert (folder / "rss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    manifest = json.loads((folder / "experiment.json").read_text())
    order = [(run["allocator"], run["repeat"], run["status"]) for run in manifest["runs"]]
    assert order == [
        ("glibc", 0, "ok"),
        ("jemalloc", 0, "ok"),
        ("glibc", 1, "ok"),
        ("jemalloc", 1, "ok"),
    ]
    by_id = {r.run_id: r for r in loaded}
    for run in manifest["runs"]:
        assert (folder / run["file"]).is_file()
        assert by_id[run["run_id"]].allocator.name == run["allocator"]

    # The headline: jemalloc's after-idle RSS as a ratio to glibc's.
    lines = done.stdout.splitlines()
    assert any(line.startswith("jemalloc") and "× glibc" in line for line in lines), done.stdout
    assert f"comparison: {folder / 'comparison.md'}\n" in done.stdout
    assert f"report:     {folder / 'report.html'}\n" in done.stdout

    # The page of a real experiment, in a real browser with no network.
    if find_chromium() is None:
        pytest.skip("chromium is missing: scripts/setup.sh installs it (apt-get install chromium)")
    with headless_chromium(tmp_path / "chromium") as browser:
        visit = browser.visit(folder / "report.html", LOOK)
    assert_self_contained(visit)
    assert "The answer" in visit.text and "after-idle RSS (MiB)" in visit.text
    assert visit.values["figures"] == 2  # RSS, and where the memory is
    assert colours(visit.screenshot_png)[0] > 100


RESUMABLE = """\
name: e2e-resume
allocators: [glibc]
repeats: 2
iterations: 400
run:
  tags: [tiny]
  batches: 1
  baseline_s: 0.5
  idle_s: 1
  trim_s: 0
"""


def test_an_experiment_killed_mid_run_resumes_where_it_stopped(tmp_path: Path) -> None:
    experiment = tmp_path / "e2e-resume.yml"
    experiment.write_text(RESUMABLE)
    out = tmp_path / "results"
    with open(tmp_path / "stderr.txt", "wb") as err:
        harness = subprocess.Popen(
            [*SANDBOX, "experiment", str(experiment), "--results-dir", str(out)],
            cwd=REPO,
            env=harness_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            deadline = time.monotonic() + 120
            while "[2/2]" not in (tmp_path / "stderr.txt").read_text():
                assert harness.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
            [folder] = out.iterdir()
            while not list(folder.glob("*.partial.json")):  # run 2 has checkpointed
                assert time.monotonic() < deadline
                time.sleep(0.1)
            server = [
                p for p in psutil.Process(harness.pid).children() if "sandbox.server" in p.cmdline()
            ]
        finally:
            harness.kill()
            harness.wait()
    manifest = json.loads((folder / "experiment.json").read_text())
    assert [r["status"] for r in manifest["runs"]] == ["ok", "running"]
    time.sleep(2.0)
    assert server and not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in server)

    done = run_sandbox("experiment", "--resume", str(folder), timeout_s=120)

    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith(f"note: marked {folder}/") and " harness-died: " in lines[0]
    assert lines[1] == f"resuming {folder}: 1 of 2 runs done, 1 to run again, 0 not yet run"
    assert lines[2].startswith("skip  [1/2] glibc (repeat 1): ok in ")
    assert lines[3].startswith("rerun [2/2] glibc (repeat 2): it was harness-died (")
    manifest = json.loads((folder / "experiment.json").read_text())
    assert [r["status"] for r in manifest["runs"]] == ["ok", "ok"]
    assert [a["status"] for a in manifest["runs"][1]["superseded"]] == ["harness-died"]
    statuses = sorted(r.status for r in result_files.load_all([folder]))
    assert statuses == ["harness-died", "ok", "ok"]  # the checkpoint stays, readable
