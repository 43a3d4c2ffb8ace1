from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.config import settings as config
from sandbox.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "benchmark.yml"
    path.write_text(text)
    (tmp_path / "plans").mkdir(exist_ok=True)
    for name in config.PLAN_NAMES:
        (tmp_path / "plans" / f"{name}.json").write_text("{}")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        config.load_benchmark(path)
    assert info.value.exit_code == 2
    return str(info.value)


def test_repository_benchmark_yml_is_valid_and_keeps_the_original_keys() -> None:
    bench = config.load_benchmark(REPO / "benchmark.yml")
    spec = config.build_spec(bench)
    assert (spec.load.users, spec.load.iterations, spec.load.spawn_rate) == (16, 2500, 16.0)
    assert [p.name for p in bench.plans] == ["tiny", "small", "medium", "large"]
    assert spec.server.host == "127.0.0.1"
    assert spec.load.locustfile == REPO / "plans" / "locustfile.py"


def test_wrong_type_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "concurrency: lots\n")
    assert error_of(path) == (f"{path}: concurrency has value 'lots'; expected a whole number >= 1")


def test_nested_wrong_value(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  handler: threads\n")
    assert (
        error_of(path)
        == f"{path}: server.handler has value 'threads'; expected one of: sync, async"
    )


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    path = write(tmp_path, "concurency: 4\n")
    assert error_of(path) == f"{path}: unknown key 'concurency' (did you mean 'concurrency'?)"


def test_unknown_nested_key(tmp_path: Path) -> None:
    path = write(tmp_path, "run:\n  batchez: 2\n")
    assert error_of(path).startswith(f"{path}: unknown key 'run.batchez' (did you mean 'batches'?)")


def test_bad_tag_and_non_loopback_base(tmp_path: Path) -> None:
    assert "run.tags has value ['huge']" in error_of(write(tmp_path, "run:\n  tags: [huge]\n"))
    msg = error_of(write(tmp_path, "base: http://10.0.0.5:3000\n"))
    assert msg.startswith(f"{tmp_path / 'benchmark.yml'}: base has value 'http://10.0.0.5:3000'")


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "concurrency: 4\nrun: [\n")
    assert error_of(path).startswith(f"{path}: not valid YAML at line")


def test_custom_allocator_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "allocators:\n  je2:\n    library: libjemalloc.so.2\n    env: {MALLOC_CONF: 'narenas:2'}\n",
    )
    bench = config.load_benchmark(path)
    assert bench.allocators["je2"].env == {"MALLOC_CONF": "narenas:2"}


def test_precedence_cli_over_file_over_default(tmp_path: Path) -> None:
    bench = config.load_benchmark(write(tmp_path, "iterations: 7\nrun:\n  batches: 2\n"))
    spec = config.build_spec(bench, config.validate_overrides("option", {"batches": 5}))
    assert (spec.load.iterations, spec.schedule.batches, spec.schedule.pause_s) == (7, 5, 5.0)


def test_override_errors_name_the_option() -> None:
    with pytest.raises(ConfigError, match=r"^--tags has value 'tiny,h uge'; expected a list of"):
        config.validate_overrides("option", {"tags": "tiny,h uge"})
    bench = config.load_benchmark(None)
    with pytest.raises(ConfigError, match=r"^tag 'huge' matches no plan in benchmark.yml"):
        config.build_spec(bench, config.validate_overrides("option", {"tags": "tiny,huge"}))


def test_redefining_a_builtin_keeps_what_is_not_redefined(tmp_path: Path) -> None:
    path = write(tmp_path, "allocators:\n  jemalloc-bg:\n    library: /opt/libjemalloc.so.2\n")
    redefined = config.load_benchmark(path).allocators["jemalloc-bg"]
    assert redefined.library == "/opt/libjemalloc.so.2"
    assert redefined.package == "libjemalloc2"
    assert "background_thread:true" in redefined.env["MALLOC_CONF"]


def test_tags_are_deduplicated_and_the_host_must_be_loopback() -> None:
    assert config.validate_overrides("option", {"tags": "tiny,tiny,small"})["tags"] == (
        "tiny",
        "small",
    )
    with pytest.raises(ConfigError) as info:  # `sandbox run` has no --host: the key is named
        config.validate_overrides("option", {"host": "10.0.0.5"})
    assert str(info.value) == (
        "server.host has value '10.0.0.5'; expected a loopback address such as 127.0.0.1 "
        "(the sandbox loads only this machine)"
    )


@pytest.mark.parametrize("name", sorted(config.SETTINGS))
def test_every_setting_rejects_a_wrong_type_naming_file_and_key(tmp_path: Path, name: str) -> None:
    key = config.SETTINGS[name].key
    section, _, leaf = key.rpartition(".")
    value = "[1, 2]" if name != "tags" else "{a: 1}"  # a list (or a mapping) fits no setting
    text = f"{section}:\n  {leaf}: {value}\n" if section else f"{leaf}: {value}\n"
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(f"{path}: {key} has value ")
    assert "; expected " in message and "\n" not in message


def test_the_truths_are_read_from_the_server_section(tmp_path: Path) -> None:
    text = "server:\n  leak_bytes: 30KiB\n  leak_kind: large\n  cache_docs: 300\n  pin_objects: 0\n"
    settings = config.build_spec(config.load_benchmark(write(tmp_path, text))).server.settings
    assert (settings.leak_bytes, settings.leak_kind) == (30 * 1024, "large")
    assert (settings.cache_docs, settings.pin_objects) == (300, 0)
    off = config.build_spec(config.load_benchmark(write(tmp_path, "{}\n"))).server.settings
    assert (off.leak_bytes, off.leak_kind, off.cache_docs, off.pin_objects) == (0, "small", 0, 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "server:\n  leak_bytes: lots\n",
            "server.leak_bytes has value 'lots'; expected a size such as 30KiB, or 0 (off)",
        ),
        (
            "server:\n  leak_bytes: -5\n",
            "server.leak_bytes has value -5; expected a size such as 30KiB, or 0 (off)",
        ),
        (
            "server:\n  leak_kind: medium\n",
            "server.leak_kind has value 'medium'; expected one of: small, large",
        ),
        (
            "server:\n  cache_docs: -1\n",
            "server.cache_docs has value -1; expected a whole number >= 0",
        ),
        (
            "server:\n  pin_objects: 2.5\n",
            "server.pin_objects has value 2.5; expected a whole number >= 0",
        ),
    ],
)
def test_a_bad_truth_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    assert error_of(path) == f"{path}: {message}"


def test_a_truth_asked_of_another_server_is_refused(tmp_path: Path) -> None:
    bench = config.load_benchmark(write(tmp_path, "server:\n  cache_docs: 10\n"))
    app = config.validate_overrides("option", {"app": "examples.cache_service.app:app"})
    with pytest.raises(ConfigError) as info:
        config.build_spec(bench, app)
    assert str(info.value) == (
        "server.cache_docs (--cache-docs) makes the stair-stepper keep memory; it does nothing "
        "to app examples.cache_service.app:app: set it to 0 or serve the stair-stepper"
    )
    off = config.validate_overrides("option", {**app, "cache_docs": 0})
    assert config.build_spec(bench, off).server.settings.truths is False
