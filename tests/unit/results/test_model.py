from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import pytest

from sandbox.errors import ResultFormatError
from sandbox.results import files as result_files
from sandbox.results import model as results
from sandbox.results import summary
from sandbox.results.sampling import Columns, Phase
from sandbox.results.shapes import from_plain, to_plain
from tests.fakes import make_collection, make_result

DATA = Path(__file__).resolve().parents[2] / "data"


def test_round_trip_json_and_gzip(tmp_path: Path) -> None:
    result = make_result("jemalloc", repeat=1)
    for name in ("a.json", "b.json.gz"):
        path = result_files.dump(result, tmp_path / name)
        assert result_files.load(path) == result
    assert gzip.decompress((tmp_path / "b.json.gz").read_bytes()).startswith(b"{")


def test_never_overwrites(tmp_path: Path) -> None:
    result = make_result()
    path = result_files.dump(result, tmp_path / "r.json")
    with pytest.raises(FileExistsError, match="will not overwrite"):
        result_files.dump(result, path)
    result_files.dump(result, path, force=True)


def test_unknown_version_is_rejected(tmp_path: Path) -> None:
    data = to_plain(make_result())
    data["version"] = 99
    path = tmp_path / "future.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultFormatError) as info:
        result_files.load(path)
    assert str(info.value) == (
        f"{path}: result format version 99 is not supported by this sandbox "
        "(it reads versions 1, 2, 3, 4, 5); use the sandbox version that wrote it"
    )


def test_not_a_result_and_unequal_columns(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(ResultFormatError) as info:
        result_files.load(other)
    assert str(info.value) == (
        f"{other}: not a sandbox result file (JSON without 'format: sandbox-run'); pass a run's "
        "result file or the folder that holds the runs"
    )
    data = to_plain(make_result())
    data["samples"]["rss_bytes"].pop()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ResultFormatError, match="'samples' columns have different lengths"):
        result_files.load(bad)


def test_load_all_skips_other_json_in_a_folder_but_not_a_file_named_itself(
    tmp_path: Path,
) -> None:
    run = make_result()
    result_files.dump(run, tmp_path / f"{run.run_id}.json")
    manifest = tmp_path / "experiment.json"
    manifest.write_text('{"format": "sandbox-experiment", "version": 1}')

    assert [r.run_id for r in result_files.load_all([tmp_path])] == [run.run_id]
    # a shell glob (results/x/*.json) names the manifest too: skipped beside real runs
    assert len(result_files.load_all(sorted(tmp_path.glob("*.json")))) == 1
    with pytest.raises(result_files.NotAResultError) as info:
        result_files.load_all([manifest])
    assert str(info.value) == (
        f"{manifest}: not a sandbox result file (a 'sandbox-experiment' file); pass a run's "
        "result file or the folder that holds the runs"
    )


def test_summary_is_recomputable_from_samples() -> None:
    r = make_result("glibc")
    assert (
        summary.compute_summary(r.samples, r.phases, r.summary.vmhwm_bytes, r.probes) == r.summary
    )


def test_summary_definitions_on_a_known_series() -> None:
    phases = [
        Phase("baseline", 0, 2),
        Phase("batch-1", 2, 4),
        Phase("idle", 4, 8),
    ]
    t: list[float] = [0, 1, 2, 3, 4, 5, 6, 7, 8]
    rss: list[float] = [10, 12, 50, 90, 80, 70, 60, 40, 41]
    samples: Columns = {"t_s": list(t), "rss_bytes": list(rss)}
    s = summary.compute_summary(samples, phases, 95)
    assert (s.baseline_rss_bytes, s.peak_rss_bytes) == (12, 90)
    assert s.end_of_load_rss_bytes == 80  # last sample at or before the batch's end (t=4)
    assert s.after_idle_rss_bytes == 40  # median of the idle phase's last quarter (t 7..8)
    assert s.vmhwm_bytes == 95


def test_golden_file_of_each_version_loads() -> None:
    golden = sorted(DATA.glob("result_v*.json*"))
    versions = [int(p.name.split(".")[0].removeprefix("result_v")) for p in golden]
    assert versions == list(results.READABLE_VERSIONS), "one golden file per readable version"
    for path, version in zip(golden, versions, strict=True):
        assert json.loads(gzip.decompress(path.read_bytes()))["version"] == version
        r = result_files.load(path)
        assert r.status == "ok"
        assert r.summary == summary.compute_summary(
            r.samples, r.phases, r.summary.vmhwm_bytes, r.probes
        )


def test_a_file_of_the_current_format_is_written_back_byte_for_byte() -> None:
    text = gzip.decompress((DATA / f"result_v{results.FORMAT_VERSION}.json.gz").read_bytes())
    back = to_plain(from_plain(results.RunResult, json.loads(text)))
    assert json.dumps(back, indent=1, allow_nan=False).encode() == text


def _keys(data: object, path: str = "") -> set[str]:
    """Every key path in a JSON document (list items share their list's path)."""
    if isinstance(data, dict):
        return {f"{path}/{k}" for k in data} | {
            key for k, v in data.items() for key in _keys(v, f"{path}/{k}")
        }
    if isinstance(data, list):
        return {key for item in data for key in _keys(item, path)}
    return set()


@pytest.mark.parametrize("version", [3, 4])
def test_an_older_file_keeps_every_key_it_had(version: int) -> None:
    raw = json.loads(gzip.decompress((DATA / f"result_v{version}.json.gz").read_bytes()))
    written = to_plain(from_plain(results.RunResult, raw))
    assert _keys(raw) - _keys(written) == set()
    assert written["version"] == results.FORMAT_VERSION
    assert written["sampler"]["agent_injected"] is None


def test_format_4_records_the_harness_and_keeps_a_dead_harness_run_readable() -> None:
    v4 = result_files.load(DATA / "result_v4.json.gz")
    assert v4.harness is not None and v4.harness.start_ticks is not None
    assert v4.harness.boot_id and v4.harness.hostname
    died = result_files.load(DATA / "harness_died_v4.json.gz")  # a real run, SIGKILLed mid-way
    assert died.status == "harness-died"
    assert died.status_detail.startswith(
        f"the harness (pid {died.harness.pid if died.harness else 0}) died; this is its last "
        "checkpoint, written "
    )
    assert died.samples["rss_bytes"] and len(died.load.stats) == 1
    assert died.summary == summary.compute_summary(
        died.samples, died.phases, died.summary.vmhwm_bytes, died.probes
    )


def test_older_files_read_into_the_typed_sections() -> None:
    v1 = result_files.load(DATA / "result_v1.json.gz")
    assert (v1.trim, v1.profile, v1.objects, v1.thresholds) == (None, None, {}, [])
    assert v1.load.spec.model.name == "iterations"
    assert v1.sampler.harness_rss_bytes is None and v1.sampler.decimation == 1
    assert v1.host.sandbox_version == "0.1.0"
    v2 = result_files.load(DATA / "result_v2.json.gz")
    trim = v2.trim
    assert trim is not None and trim.called
    assert trim.released.held_bytes == trim.before["held_bytes"] - trim.after["held_bytes"]
    v3 = result_files.load(DATA / "result_v3.json.gz")
    assert v3.load.spec.model.name == "spike" and v3.load.spec.workers == 2
    assert [c.passed for c in v3.thresholds] == [False]
    assert (trim.processes, v3.sampler.agents, v3.sampler.agent_injected) == ([], [], None)


def test_format_5_has_each_process_and_its_agent() -> None:
    """examples/cache_service under gunicorn -w 2 (an arbiter, two workers), jemalloc."""
    v5 = result_files.load(DATA / "result_v5.json.gz")
    labels = ["main", "w1", "w2"]
    assert v5.sampler.agent_injected is True
    assert [(p.label, p.agent) for p in v5.sampler.agents] == [(label, True) for label in labels]
    for name in ("alloc_in_use_bytes", "alloc_held_bytes"):
        parts = [v5.probes[f"{name}_{label}"] for label in labels]
        assert v5.probes[name] == [sum(row) for row in zip(*parts, strict=True)]
    trim = v5.trim
    assert trim is not None and trim.done
    assert [p.label for p in trim.processes] == labels
    assert trim.released.rss_bytes == sum(p.answer.released.rss_bytes or 0 for p in trim.processes)


def test_a_bad_section_names_itself(tmp_path: Path) -> None:
    data = to_plain(make_result())
    data["load"]["stats"] = "none"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultFormatError) as info:
        result_files.load(path)
    assert str(info.value) == f"{path}: load.stats has value 'none'; expected a list"
    data = to_plain(make_result())
    data["trim"] = {"called": "malloc_trim(0)"}
    path.write_text(json.dumps(data))
    with pytest.raises(ResultFormatError) as info:
        result_files.load(path)
    assert str(info.value) == f"{path}: trim.result is missing"


def test_a_collection_is_written_only_when_recorded_and_reads_back() -> None:
    run = make_result("glibc")
    assert "collection" not in to_plain(run)  # absent, not {}: older files write back as read
    recorded = replace(run, collection=make_collection(40.0, 2.0))
    written = to_plain(recorded)
    assert written["collection"]["unreachable"] == 1_234_567
    back = from_plain(results.RunResult, json.loads(json.dumps(written)))
    assert back.collection == recorded.collection
