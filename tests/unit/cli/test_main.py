"""The `sandbox` commands through click's CliRunner, with the core (run_once) patched out."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock, patch

import pytest
from click.testing import CliRunner, Result

from sandbox.allocators import registry as allocators
from sandbox.analysis import report
from sandbox.cli.main import cli
from sandbox.config import settings as config
from sandbox.config.run_spec import RunSpec
from sandbox.errors import AllocatorError
from sandbox.results import files as result_files
from sandbox.results.model import RunResult
from tests.fakes import make_group, make_result

REPO = Path(__file__).resolve().parents[3]


pytestmark = pytest.mark.usefixtures("keep_sigterm", "repository_config")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="sandbox")


# --- run ------------------------------------------------------------------------------------


def fake_run_once(result: RunResult, path: Path) -> MagicMock:
    return MagicMock(return_value=(result, path))


def spec_of(mock: MagicMock) -> RunSpec:
    mock.assert_called_once()
    spec = mock.call_args.args[0]
    assert isinstance(spec, RunSpec)
    assert callable(mock.call_args.kwargs["on_progress"])
    return spec


def test_run_passes_every_option_into_the_spec(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "r.json"
    with patch("sandbox.measure.runner.run_once", fake_run_once(make_result(), path)) as run_once:
        done = invoke(
            "run",
            "--allocator", "jemalloc",
            "--tags", "tiny,small",
            "--users", "7",
            "--rampup", "0.5",
            "--iterations", "3",
            "--batches", "2",
            "--pause", "0.25",
            "--baseline", "1",
            "--idle", "2",
            "--sleep-ms", "0",
            "--handler", "async",
            "--threads", "4",
            "--pymalloc", "off",
            "--interval", "0.05",
            "--max-rss", "1GiB",
            "--hang-timeout", "2.5",
            "--port", "4321",
            "--results-dir", str(tmp_path),
            "--gzip",
        )  # fmt: skip

    assert done.exit_code == 0, done.output
    spec = spec_of(run_once)
    assert spec.allocator == "jemalloc"
    assert spec.load.tags == ("tiny", "small")
    assert (spec.load.users, spec.load.spawn_rate) == (7, 14.0)
    assert (spec.load.iterations, spec.schedule.batches, spec.schedule.pause_s) == (3, 2, 0.25)
    assert (spec.schedule.baseline_s, spec.schedule.idle_s) == (1.0, 2.0)
    settings = spec.server.settings
    assert (settings.sleep_ms, settings.handler, settings.threads) == (0, "async", 4)
    assert spec.server.pymalloc is False
    assert spec.sampler.interval_s == 0.05
    assert spec.limits.max_rss_bytes == 1073741824
    assert spec.limits.hang_timeout_s == 2.5
    assert spec.server.port == 4321
    assert spec.output.results_dir == tmp_path
    assert spec.output.compress is True
    assert spec.experiment is None


def test_run_passes_the_truths_into_the_spec(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "r.json"
    with patch("sandbox.measure.runner.run_once", fake_run_once(make_result(), path)) as run_once:
        done = invoke(
            "run",
            "--leak", "30KiB",
            "--leak-kind", "large",
            "--cache-docs", "300",
            "--pin-objects", "2000",
        )  # fmt: skip

    assert done.exit_code == 0, done.output
    settings = spec_of(run_once).server.settings
    assert (settings.leak_bytes, settings.leak_kind) == (30 * 1024, "large")
    assert (settings.cache_docs, settings.pin_objects) == (300, 2000)
    assert settings.to_environ()["LEAK_BYTES"] == "30720"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--leak", "lots"), "'lots' is not a size such as 30KiB, or 0 (off)"),
        (("--leak-kind", "huge"), "'huge' is not one of 'small', 'large'."),
        (("--cache-docs", "-1"), "-1 is not in the range x>=0."),
    ],
)
def test_a_bad_truth_flag_is_a_usage_error(args: tuple[str, str], message: str) -> None:
    with patch("sandbox.measure.runner.run_once") as run_once:
        done = invoke("run", *args)

    assert done.exit_code == 2
    assert done.stderr == usage_error("run", f"Invalid value for '{args[0]}': {message}")
    run_once.assert_not_called()


def test_leak_zero_turns_a_leak_of_benchmark_yml_off(tmp_path: Path) -> None:
    (tmp_path / "cwd" / "benchmark.yml").write_text("server:\n  leak_bytes: 1MiB\n")
    path = tmp_path / "runs" / "r.json"
    with patch("sandbox.measure.runner.run_once", fake_run_once(make_result(), path)) as run_once:
        done = invoke("run", "--leak", "0")

    assert done.exit_code == 0, done.output
    assert spec_of(run_once).server.settings.leak_bytes == 0


def test_run_without_options_uses_benchmark_yml(tmp_path: Path) -> None:
    with patch(
        "sandbox.measure.runner.run_once", fake_run_once(make_result(), tmp_path / "r.json")
    ) as m:
        done = invoke("run")

    assert done.exit_code == 0, done.output
    bench = config.load_benchmark(REPO / "benchmark.yml")
    assert spec_of(m) == config.build_spec(bench)


def test_run_prints_the_summary_and_the_next_command(tmp_path: Path) -> None:
    result = make_result("jemalloc", experiment=None)
    path = tmp_path / "runs" / f"{result.run_id}.json"
    with patch("sandbox.measure.runner.run_once", fake_run_once(result, path)):
        done = invoke("run", "-a", "jemalloc", "--results-dir", str(tmp_path))

    assert done.exit_code == 0, done.output
    assert f"run {result.run_id}: ok after " in done.stdout
    assert f"  allocator  jemalloc: {result.allocator.library} (verified mapped)\n" in done.stdout
    assert done.stdout.endswith(f"result: {path}\nnext:   sandbox plot {path}\n")
    assert "Error" not in done.stderr


def test_run_server_died_exits_1_naming_the_partial_result(tmp_path: Path) -> None:
    result = replace(
        make_result(status="server-died"),
        status_detail="the server was killed by SIGKILL during batch-2",
    )
    path = tmp_path / "runs" / f"{result.run_id}.json"
    with patch("sandbox.measure.runner.run_once", fake_run_once(result, path)):
        done = invoke("run", "--results-dir", str(tmp_path))

    assert done.exit_code == 1
    assert done.stderr.splitlines()[-1] == (
        f"Error: the server was killed by SIGKILL during batch-2; partial result written to {path}"
    )
    assert f"result: {path}\n" in done.stdout


def test_run_interrupted_exits_130(tmp_path: Path) -> None:
    result = replace(make_result(status="interrupted"), status_detail="interrupted during idle")
    path = tmp_path / "r.json"
    with patch("sandbox.measure.runner.run_once", fake_run_once(result, path)):
        done = invoke("run")

    assert done.exit_code == 130
    assert done.stderr.splitlines()[-1] == f"Interrupted; partial result written to {path}"


def test_run_interrupted_before_measuring_exits_130() -> None:
    with patch("sandbox.measure.runner.run_once", MagicMock(side_effect=KeyboardInterrupt)):
        done = invoke("run")

    assert done.exit_code == 130
    assert done.stderr == "Interrupted before anything was measured; no result written.\n"
    assert done.stdout == ""


def test_run_sandbox_error_exits_1_with_one_line() -> None:
    error = AllocatorError("jemalloc: libjemalloc.so.2 not found; install it")
    with patch("sandbox.measure.runner.run_once", MagicMock(side_effect=error)):
        done = invoke("run", "-a", "jemalloc")

    assert done.exit_code == 1
    assert done.stderr == "Error: jemalloc: libjemalloc.so.2 not found; install it\n"


def test_run_bad_option_is_a_usage_error_and_runs_nothing() -> None:
    with patch("sandbox.measure.runner.run_once") as run_once:
        done = invoke("run", "--tags", "tiny,huge")

    assert done.exit_code == 2
    assert done.stderr.splitlines()[-1] == (
        "Error: tag 'huge' matches no plan in benchmark.yml; available: large, medium, small, tiny"
    )
    run_once.assert_not_called()


def test_run_bug_keeps_its_traceback() -> None:
    with patch("sandbox.measure.runner.run_once", MagicMock(side_effect=ZeroDivisionError("bug"))):
        done = invoke("run")

    assert done.exit_code == 1
    assert isinstance(done.exception, ZeroDivisionError)


def usage_error(command: str, message: str) -> str:
    """What click prints for a usage error of `sandbox COMMAND`."""
    return (
        f"Usage: sandbox {command} [OPTIONS]\nTry 'sandbox {command} --help' for help.\n\n"
        f"Error: {message}\n"
    )


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--pause", "nan", "a number >= 0"),
        ("--baseline", "inf", "a number >= 0"),
        ("--idle", "nan", "a number >= 0"),
        ("--interval", "nan", "a number >= 0.001"),
        ("--hang-timeout", "inf", "a number > 0"),
        ("--trim", "nan", "a number >= 0"),
        ("--duration", "nan", "a number >= 0"),
        ("--spike-at", "nan", "a number >= 0"),
        ("--spike-for", "nan", "a number >= 0"),
    ],
)
def test_a_bad_value_names_the_flag_that_was_typed(flag: str, value: str, expected: str) -> None:
    """click's ranges let nan and inf through; the setting's check names the flag (it named
    `--pause-s`, `--spike-s`, ... before)."""
    with patch("sandbox.measure.runner.run_once") as run_once:
        done = invoke("run", flag, value)

    assert done.exit_code == 2
    assert done.stderr == usage_error("run", f"{flag} has value {value}; expected {expected}")
    run_once.assert_not_called()


def test_the_spike_users_message_names_the_users_flag() -> None:
    with patch("sandbox.measure.runner.run_once") as run_once:
        done = invoke("run", "--load", "spike", "--rate", "5", "--users", "2")

    assert done.exit_code == 2
    assert done.stderr == usage_error(
        "run",
        "concurrency (--users): the spike model needs at least spike_x (5) users, "
        "one for the baseline and spike_x for the burst",
    )
    run_once.assert_not_called()


def test_a_config_error_in_any_command_is_a_usage_error_of_that_command(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yml"
    for command in ("doctor", "serve", "run"):
        done = invoke(command, "--config", str(missing))
        assert done.exit_code == 2, command
        assert done.stderr == usage_error(command, f"{missing}: no such file")
    done = invoke("experiment", str(missing))
    assert done.exit_code == 2
    assert done.stderr == (
        "Usage: sandbox experiment [OPTIONS] [EXPERIMENT_FILE]\n"
        "Try 'sandbox experiment --help' for help.\n\n"
        f"Error: {missing}: no such file\n"
    )


def test_serve_on_a_busy_port_exits_1_with_one_line() -> None:
    with (
        patch("sandbox.system.processes.port_in_use", return_value=True),
        patch("os.execve") as execve,
    ):
        done = invoke("serve", "--port", "4000")

    assert done.exit_code == 1
    assert done.stderr == (
        "Error: port 4000 on 127.0.0.1 is in use; stop the other server or pass --port\n"
    )
    execve.assert_not_called()


def test_plot_without_results_exits_1(tmp_path: Path) -> None:
    done = invoke("plot", str(tmp_path))

    assert done.exit_code == 1
    assert done.stderr == f"Error: no result files under {tmp_path}\n"


def test_a_bug_in_a_later_command_keeps_its_traceback(folder: Path) -> None:
    with patch("sandbox.analysis.compare.compare", side_effect=KeyError("bug")):
        done = invoke("compare", str(folder))

    assert done.exit_code == 1
    assert isinstance(done.exception, KeyError)


# --- compare and plot -----------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three fake glibc runs and three jemalloc runs, as result files."""
    out = tmp_path / "exp"
    for r in [*make_group("glibc", 3), *make_group("jemalloc", 3)]:
        result_files.dump(r, out / f"{r.run_id}.json")
    return out


def test_compare_table(folder: Path) -> None:
    done = invoke("compare", str(folder))

    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("6 runs of fake-experiment: ")
    lines = done.stdout.splitlines()
    assert any(line.startswith("jemalloc") and "× glibc" in line for line in lines)


def test_compare_shows_the_stair_read_and_the_time_to_a_limit(folder: Path) -> None:
    done = invoke("compare", str(folder), "--limit", "4GiB")

    assert done.exit_code == 0, done.output
    assert "glibc: the stair read over 3 batches (3 runs; MiB each batch added, median)" in (
        done.stdout
    )
    assert "  RSS: still climbing, " in done.stdout
    assert done.stdout.count("  RSS would reach 4096 MiB in ≈ ") == 2
    bad = invoke("compare", str(folder), "--limit", "lots")
    assert bad.exit_code == 2
    assert "'lots' is not" in bad.output


def test_compare_markdown(folder: Path) -> None:
    done = invoke("compare", str(folder), "--format", "markdown")

    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("**6 runs of fake-experiment: ")
    assert "| metric | group | n |" in done.stdout


def test_compare_csv_parses(folder: Path) -> None:
    done = invoke("compare", str(folder), "--format", "csv")

    assert done.exit_code == 0, done.output
    reader = csv.DictReader(io.StringIO(done.stdout))
    rows = list(reader)
    assert reader.fieldnames == list(report.CSV_COLUMNS)
    assert {r["group"] for r in rows} == {"glibc", "jemalloc"}
    assert {r["baseline"] for r in rows} == {"glibc"}
    idle = next(r for r in rows if r["group"] == "jemalloc" and r["metric"] == "after_idle_rss_mib")
    assert idle["n"] == "3"
    assert 0 < float(idle["ratio"]) < 1  # the fake jemalloc keeps less than glibc


def test_compare_json_loads(folder: Path) -> None:
    done = invoke("compare", str(folder), "--format", "json", "--baseline", "jemalloc")

    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["baseline"] == "jemalloc"
    assert [g["label"] for g in data["groups"]] == ["jemalloc", "glibc"]
    assert [g["n"] for g in data["groups"]] == [3, 3]


def test_compare_without_results_exits_1(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    done = invoke("compare", str(empty))
    assert done.exit_code == 1
    assert done.stderr == f"Error: no result files under {empty}\n"

    done = invoke("compare", str(tmp_path / "nowhere"))
    assert done.exit_code == 2  # bad input, as for a bad result file
    assert done.stderr == f"Error: {tmp_path / 'nowhere'}: no such file or folder\n"


def test_plot_writes_png_and_svg_beside_the_results(folder: Path) -> None:
    done = invoke("plot", str(folder))

    assert done.exit_code == 0, done.output
    written = [folder / "rss.png", folder / "rss.svg"]
    assert done.stdout.splitlines() == [str(p) for p in written]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written[1].read_text().lstrip().startswith("<?xml")


def test_plot_by_requests_to_a_chosen_file(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "figures" / "mine"
    done = invoke("plot", str(folder), "--x", "requests", "--out", str(out), "--format", "png")

    assert done.exit_code == 0, done.output
    assert done.stdout == f"{out}.png\n"
    assert (out.parent / "mine.png").stat().st_size > 0
    assert not (out.parent / "mine.svg").exists()


# --- doctor ---------------------------------------------------------------------------------


def doctor(found: dict[str, str | None]) -> Result:
    def find(library: str) -> str | None:
        return found.get(library, f"/usr/lib/{library}")

    with (
        patch("sandbox.allocators.registry.find_library", side_effect=find),
        patch("sandbox.allocators.registry.package_version", return_value="1.0"),
        patch("sandbox.inspector.inspection.readiness", return_value=INSPECT_READY),
    ):
        return invoke("doctor")


INSPECT_READY = "inspect: gdb 18.1 (/x/gdb); preflight passed: 6 looks at 2 canaries"


def test_doctor_lists_every_builtin_allocator() -> None:
    done = doctor({})

    assert done.exit_code == 0, done.output
    table, inspect_line = done.stdout.split("\n\n")
    assert inspect_line == INSPECT_READY + "\n"
    names = [line.split()[0] for line in table.splitlines()]
    assert names == list(allocators.BUILTIN)
    assert len(names) == 6
    jemalloc = next(line for line in done.stdout.splitlines() if line.startswith("jemalloc "))
    assert jemalloc.split()[:5] == [
        "jemalloc", "found", "/usr/lib/libjemalloc.so.2", "libjemalloc2", "1.0",
    ]  # fmt: skip
    assert done.stderr == ""


def test_doctor_names_the_packages_of_missing_libraries() -> None:
    done = doctor({"libjemalloc.so.2": None})

    assert done.exit_code == 1
    table = done.stdout.split("\n\n")[0]
    rows = {line.split()[0]: line.split()[1] for line in table.splitlines()}
    assert rows["jemalloc"] == rows["jemalloc-bg"] == "MISSING"
    assert rows["mimalloc"] == rows["glibc"] == "found"
    assert done.stderr == "\nInstall missing libraries with: apt-get install libjemalloc2\n"


# --- experiment -----------------------------------------------------------------------------

EXPERIMENT = """\
name: cli-test
allocators: [glibc, glibc-arena2]
repeats: 2
iterations: 5
run: {tags: [tiny], batches: 1}
"""


def fake_runs(interrupt_at: int | None = None) -> MagicMock:
    """run_once that writes a fake result where the real one would go."""
    calls: list[RunSpec] = []

    def run_once(spec: RunSpec, **_: Any) -> tuple[RunResult, Path]:
        calls.append(spec)
        if len(calls) == interrupt_at:
            raise KeyboardInterrupt
        result = make_result(spec.allocator, repeat=spec.repeat, experiment=spec.experiment)
        return result, result_files.dump(result, spec.output.results_dir / f"{result.run_id}.json")

    return MagicMock(side_effect=run_once)


def test_experiment_runs_compares_and_plots(tmp_path: Path) -> None:
    file = tmp_path / "cli-test.yml"
    file.write_text(EXPERIMENT)
    with patch("sandbox.measure.runner.run_once", fake_runs()) as run_once:
        done = invoke("experiment", str(file), "--results-dir", str(tmp_path / "out"))

    assert done.exit_code == 0, done.output
    specs = [c.args[0] for c in run_once.call_args_list]
    assert [(s.allocator, s.repeat) for s in specs] == [
        ("glibc", 0), ("glibc-arena2", 0), ("glibc", 1), ("glibc-arena2", 1),
    ]  # fmt: skip
    assert {(s.load.iterations, s.load.tags, s.experiment) for s in specs} == {
        (5, ("tiny",), "cli-test")
    }
    [folder] = (tmp_path / "out").iterdir()
    assert {s.output.results_dir for s in specs} == {folder}
    for name in ("experiment.json", "comparison.md", "comparison.json", "rss.png", "rss.svg"):
        assert (folder / name).is_file(), name
    assert f"comparison: {folder / 'comparison.md'}\n" in done.stdout
    assert "[4/4] glibc-arena2 (repeat 2)" in done.stderr


def test_experiment_interrupted_keeps_the_finished_runs(tmp_path: Path) -> None:
    file = tmp_path / "cli-test.yml"
    file.write_text(EXPERIMENT)
    with patch("sandbox.measure.runner.run_once", fake_runs(interrupt_at=3)):
        done = invoke("experiment", str(file), "--results-dir", str(tmp_path / "out"))

    assert done.exit_code == 130
    [folder] = (tmp_path / "out").iterdir()
    assert done.stderr.splitlines()[-1] == (
        "Interrupted; the comparison covers the runs that finished. Continue with: "
        f"sandbox experiment --resume {folder}"
    )
    manifest = json.loads((folder / "experiment.json").read_text())
    assert [r["status"] for r in manifest["runs"]] == ["ok", "ok", "interrupted", "pending"]
    assert len(result_files.load_all([folder])) == 2


# --- help -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["", "run", "doctor", "serve", "experiment", "compare", "plot"])
def test_help(command: str) -> None:
    args = [command, "--help"] if command else ["--help"]
    done = invoke(*args)

    assert done.exit_code == 0, done.output
    assert done.stdout.startswith(f"Usage: sandbox {command}".rstrip() + " ")
    if command:
        first = (cli.commands[command].help or "").splitlines()[0]
        assert " ".join(first.split()) in " ".join(done.stdout.split())  # click wraps lines


def test_version() -> None:
    done = invoke("--version")
    assert done.exit_code == 0
    assert done.stdout.startswith("sandbox, version ")
