"""Malformed input gives one line naming the file and the key: result files (types, depth,
size, NaN, broken gzip), settings files (allocator names, deep nesting, too many runs) and the
spec's memory cap. The mutation test (test_input_fuzz.py) covers the rest at random."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sandbox.cli import main as cli
from sandbox.config import settings as config
from sandbox.config import values as checks
from sandbox.config.run_spec import Limits
from sandbox.errors import ConfigError, ResultFormatError
from sandbox.experiment import definition as experiment
from sandbox.results import files as result_files

DATA = Path(__file__).resolve().parents[2] / "data"
NAMES = (
    "a name of letters, digits, '.', '_' and '-' (not starting with '.'), at most 64 "
    "characters, e.g. jemalloc-narenas2"
)


def golden() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(gzip.decompress((DATA / "result_v3.json.gz").read_bytes()))
    return doc


def load_error(path: Path) -> str:
    with pytest.raises(ResultFormatError) as info:
        result_files.load(path)
    return str(info.value)


def write_changed(tmp_path: Path, change: Any) -> Path:
    doc = golden()
    change(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(samples=[1, 2]), "samples has value [1, 2]; expected a mapping"),
        (
            lambda d: d["samples"]["rss_bytes"].__setitem__(3, "x"),
            "samples.rss_bytes[3] has value 'x'; expected a number",
        ),
        (
            lambda d: d["summary"].update(peak_rss_bytes="x"),
            "summary.peak_rss_bytes has value 'x'; expected a whole number",
        ),
        (
            lambda d: d["summary"].update(peak_rss_bytes=2**70),
            "summary.peak_rss_bytes has value 1180591620717411303424; expected a whole number",
        ),
        (
            lambda d: d.update(status="weird"),
            "status has value 'weird'; expected one of: ok, interrupted, server-died, "
            "server-hung, memory-cap, failed, running, harness-died",
        ),
        (
            lambda d: d["load"].update(users="x"),
            "load.users has value 'x'; expected a whole number",
        ),
        (
            lambda d: d["load"]["model"].update(rate=[]),
            "load.model.rate has value []; expected a number",
        ),
        (
            lambda d: d["load"]["stats"][0].update(p95_ms=None),
            "load.stats[0].p95_ms has value None; expected a number",
        ),
        (
            lambda d: d["server"].update(command="python -m sandbox.server"),
            "server.command has value 'python -m sandbox.server'; expected a list",
        ),
        (
            lambda d: d["host"].update(packages={"uvicorn": 1}),
            "host.packages.uvicorn has value 1; expected a string or null",
        ),
        (lambda d: d.update(repeat=True), "repeat has value True; expected a whole number"),
    ],
)
def test_a_wrong_type_anywhere_names_the_file_and_the_key(
    tmp_path: Path, change: Any, message: str
) -> None:
    path = write_changed(tmp_path, change)
    assert load_error(path) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "nested more than 32 levels deep"),
        (b'{"format": "sandbox-run", "x": NaN}', "NaN is not a number a result file may hold"),
        (b'{"x": -Infinity}', "-Infinity is not a number a result file may hold"),
    ],
)
def test_unreadable_json_is_one_line(tmp_path: Path, raw: bytes, why: str) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(raw)
    assert load_error(path) == f"{path}: not a readable result file ({why})"


def test_broken_gzip_is_one_line(tmp_path: Path) -> None:
    packed = (DATA / "result_v3.json.gz").read_bytes()
    path = tmp_path / "r.json.gz"
    path.write_bytes(packed[:100])
    assert load_error(path) == (
        f"{path}: not a readable result file "
        "(Compressed file ended before the end-of-stream marker was reached)"
    )
    flipped = bytearray(packed)
    flipped[50] ^= 0xFF
    path.write_bytes(bytes(flipped))
    assert load_error(path).startswith(f"{path}: not a readable result file (Error -3 ")


def test_decompression_stops_at_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(result_files, "MAX_RESULT_BYTES", 1024 * 1024)
    path = tmp_path / "bomb.json.gz"
    path.write_bytes(gzip.compress(b" " * (64 * 1024 * 1024)))  # 64 MiB in 64 KiB
    assert path.stat().st_size < 100_000
    assert load_error(path) == f"{path}: not a readable result file (over 1 MiB of JSON)"


def test_a_folder_named_like_a_result_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "r.json"
    folder.mkdir()
    assert load_error(folder) == f"{folder}: a folder, not a result file"


def test_compare_of_a_bad_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = write_changed(tmp_path, lambda d: d.update(samples=[1, 2]))
    done = CliRunner().invoke(cli.cli, ["compare", str(path)])
    assert done.exit_code == 2
    assert done.output == f"Error: {path}: samples has value [1, 2]; expected a mapping\n"


# --- settings files -------------------------------------------------------------------------


def write_benchmark(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "benchmark.yml"
    path.write_text(text)
    (tmp_path / "plans").mkdir(exist_ok=True)
    for name in config.PLAN_NAMES:
        (tmp_path / "plans" / f"{name}.json").write_text("{}")
    return path


def config_error(load: Any, path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.exit_code == 2
    return str(info.value)


@pytest.mark.parametrize("name", ["../../tmp/x", ".hidden", "a" * 65, "jemalloc two"])
def test_an_allocator_defined_under_a_bad_name_is_refused(tmp_path: Path, name: str) -> None:
    path = write_benchmark(tmp_path, f"allocators:\n  {json.dumps(name)}:\n    library: x.so\n")
    assert config_error(config.load_benchmark, path) == (
        f"{path}: allocators has the name {checks.shown(name)}; expected {NAMES}"
    )


def test_a_bad_allocator_flag_or_setting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        config.validate_overrides("option", {"allocator": "../x"})
    assert str(info.value) == f"--allocator has value '../x'; expected {NAMES}"
    path = write_benchmark(tmp_path, "run:\n  allocator: a/b\n")
    assert config_error(config.load_benchmark, path) == (
        f"{path}: run.allocator has value 'a/b'; expected {NAMES}"
    )


def test_an_experiment_allocator_with_a_bad_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "exp.yml"
    path.write_text("allocators: [glibc, ../../etc/x]\n")
    assert config_error(experiment.load_experiment, path) == (
        f"{path}: allocators has value '../../etc/x'; expected {NAMES}"
    )


def test_allocator_env_and_package_must_be_plain(tmp_path: Path) -> None:
    path = write_benchmark(tmp_path, "allocators:\n  je2:\n    env: {'A=B': 1}\n")
    assert config_error(config.load_benchmark, path) == (
        f"{path}: allocators.je2.env must map variable names to values"
    )
    path = write_benchmark(tmp_path, "allocators:\n  je2:\n    package: [a, b]\n")
    assert config_error(config.load_benchmark, path) == (
        f"{path}: allocators.je2.package must be a Debian package name"
    )


def test_too_many_planned_runs_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "exp.yml"
    path.write_text("allocators: [glibc, jemalloc]\nrepeats: 4611686018427387904\n")
    assert config_error(experiment.load_experiment, path) == (
        f"{path}: 9,223,372,036,854,775,808 runs planned (allocators x vary x repeats); at most "
        "10,000: lower repeats or vary fewer values"
    )


def test_deep_yaml_is_one_line(tmp_path: Path) -> None:
    path = write_benchmark(tmp_path, "concurrency: " + "[" * 5000 + "]" * 5000 + "\n")
    assert config_error(config.load_benchmark, path) == (
        f"{path}: not valid YAML at line 1; fix the syntax"
    )
    path = write_benchmark(tmp_path, "concurrency: " + "[" * 300 + "]" * 300 + "\n")
    assert config_error(config.load_benchmark, path) == (
        f"{path}: concurrency has value {'[' * 57}...; expected a whole number >= 1"
    )


def test_a_body_that_is_not_a_path_is_refused(tmp_path: Path) -> None:
    path = write_benchmark(tmp_path, "plan:\n  - name: tiny\n    body: [[[1]]]\n")
    assert config_error(config.load_benchmark, path) == (
        f"{path}: plan[0].body must be the path of a JSON body file"
    )
    path = write_benchmark(tmp_path, f"plan:\n  - name: tiny\n    body: {'x' * 5000}\n")
    assert config_error(config.load_benchmark, path).startswith(f"{path}: plan[0].body: ")


def test_a_memory_cap_of_zero_is_refused_not_read_as_no_cap(tmp_path: Path) -> None:
    path = write_benchmark(tmp_path, "run:\n  max_rss: 0\n")
    assert config_error(config.load_benchmark, path) == (
        f"{path}: run.max_rss has value 0; expected a size of at least 1 byte, such as 2GiB, "
        "800MiB or 1500000000 (leave it out for no limit)"
    )
    with pytest.raises(ConfigError) as info:
        Limits(ready_timeout_s=1, hang_timeout_s=1, max_rss_bytes=0)
    assert str(info.value) == (
        "max_rss has value 0; expected a size of at least 1 byte (leave it out for no cap)"
    )
    assert Limits(ready_timeout_s=1, hang_timeout_s=1, max_rss_bytes=None).max_rss_bytes is None
