"""to_dataframe: tidy tables of runs, samples and probes, from every result format version."""

from __future__ import annotations

import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from sandbox.analysis.dataframes import phase_at, to_dataframe
from sandbox.errors import ConfigError, SandboxError
from sandbox.results import files as result_files
from sandbox.results import model as results
from sandbox.results.sampling import Phase
from tests.fakes import make_group

DATA = Path(__file__).resolve().parents[2] / "data"
GOLDEN = sorted(DATA.glob("result_v*.json.gz"))


def test_there_is_a_golden_file_per_format_version() -> None:
    assert [p.name for p in GOLDEN] == [f"result_v{v}.json.gz" for v in results.READABLE_VERSIONS]


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_runs_table_of_a_golden_file(path: Path) -> None:
    run = result_files.load(path)

    frame = to_dataframe(path)

    assert len(frame) == 1
    row = frame.iloc[0]
    assert list(frame.columns[:4]) == ["run_id", "allocator", "group", "repeat"]
    assert (row.run_id, row.allocator, row.status) == (run.run_id, run.allocator.name, run.status)
    assert row.after_idle_rss_bytes == run.summary.after_idle_rss_bytes
    assert row.peak_rss_bytes == run.summary.peak_rss_bytes
    assert row.requests == sum(b.requests for b in run.load.stats)
    assert row.users == run.load.spec.users and row.handler == run.server.handler
    assert row.interval_s == run.sampler.interval_s


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
@pytest.mark.parametrize("table", ["samples", "probes"])
def test_long_tables_of_a_golden_file(path: Path, table: str) -> None:
    run = result_files.load(path)
    columns = getattr(run, table)

    frame = to_dataframe([path], table)

    assert len(frame) == len(columns["t_s"])
    assert list(frame.columns[:6]) == ["run_id", "allocator", "group", "repeat", "t_s", "phase"]
    assert set(frame.columns) == {"run_id", "allocator", "group", "repeat", "phase", *columns}
    assert frame.t_s.tolist() == columns["t_s"]
    for name, values in columns.items():
        assert frame[name].tolist() == values, name
    assert set(frame.phase.dropna()) <= {p.name for p in run.phases}
    assert "baseline" in set(frame.phase)


def test_a_folder_of_two_groups_groups_by_allocator(tmp_path: Path) -> None:
    runs = make_group("glibc", 2) + make_group("jemalloc", 2, parameters={"handler": "async"})
    for r in runs:
        result_files.dump(r, tmp_path / f"{r.run_id}.json")
    (tmp_path / "experiment.json").write_text('{"format": "sandbox-experiment"}')

    frame = to_dataframe(tmp_path)

    assert sorted(frame.run_id) == sorted(r.run_id for r in runs)
    medians = frame.groupby("allocator")["after_idle_rss_bytes"].median()
    for name in ("glibc", "jemalloc"):
        expected = statistics.median(
            r.summary.after_idle_rss_bytes for r in runs if r.allocator.name == name
        )
        assert medians[name] == expected
    assert set(frame.group) == {"glibc", "jemalloc handler=async"}
    assert frame.param_handler.tolist().count("async") == 2

    samples = to_dataframe(runs, "samples")
    assert len(samples) == sum(len(r.samples["t_s"]) for r in runs)
    peaks = samples.groupby("run_id")["rss_bytes"].max()
    assert {k: int(v) for k, v in peaks.items()} == {
        r.run_id: r.summary.peak_rss_bytes for r in runs
    }


def test_a_column_one_run_lacks_is_missing_in_its_rows() -> None:
    with_pss, without = make_group("glibc", 2)
    with_pss = replace(
        with_pss, samples={**with_pss.samples, "pss_bytes": with_pss.samples["rss_bytes"]}
    )

    frame = to_dataframe([with_pss, without], "samples")

    per_run = frame.groupby("run_id")["pss_bytes"].count()
    assert per_run[with_pss.run_id] == len(with_pss.samples["t_s"])
    assert per_run[without.run_id] == 0


def test_phase_at_boundaries_and_outside() -> None:
    phases = [Phase("baseline", 0.0, 2.0), Phase("batch-1", 2.0, 5.0), Phase("idle", 6.0, 8.0)]
    assert phase_at(phases, [-1.0, 0.0, 1.9, 2.0, 5.0, 5.5, 6.0, 8.0, 8.1]) == [
        None,
        "baseline",
        "baseline",
        "batch-1",
        None,
        None,
        "idle",
        "idle",
        None,
    ]


def test_unknown_table_and_no_runs() -> None:
    with pytest.raises(ConfigError) as info:
        to_dataframe(make_group("glibc", 1), "phases")
    assert str(info.value) == "unknown table 'phases'; use one of: runs, samples, probes"
    with pytest.raises(SandboxError) as no_runs:
        to_dataframe([])
    assert str(no_runs.value) == ("no run results to tabulate; pass result files or their folders")


def test_importing_results_does_not_import_pandas() -> None:
    code = "import sys, sandbox.results.model; print('pandas' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
