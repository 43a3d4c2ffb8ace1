"""`sandbox report`, and the terminal details around it: a JSON file that is not a result, and
a misspelt allocator name."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sandbox.cli.main import cli
from sandbox.results import files as result_files
from tests.fakes import make_group


@pytest.fixture(autouse=True)
def _keep_signals() -> Iterator[None]:
    """`run` turns SIGTERM into KeyboardInterrupt; don't leave that to pytest."""
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGTERM, previous[0])
    signal.signal(signal.SIGINT, previous[1])


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="sandbox")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "exp"
    for r in [*make_group("glibc", 2), *make_group("jemalloc", 2)]:
        result_files.dump(r, out / f"{r.run_id}.json")
    return out


def test_report_writes_the_page_into_the_folder(folder: Path) -> None:
    done = invoke("report", str(folder))

    assert done.exit_code == 0, done.output
    assert done.stdout == f"{folder / 'report.html'}\n"
    page = (folder / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "jemalloc" in page and f"sandbox report {folder}" in page


def test_report_out_and_baseline(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "share" / "memory.html"

    done = invoke("report", str(folder), "--out", str(out), "--baseline", "jemalloc")

    assert done.exit_code == 0, done.output
    assert done.stdout == f"{out}\n"
    assert "baseline jemalloc" in out.read_text()
    assert not (folder / "report.html").exists()


def test_report_of_an_empty_folder_says_so(tmp_path: Path) -> None:
    done = invoke("report", str(tmp_path))
    assert done.exit_code == 1
    assert done.stderr == f"Error: no result files under {tmp_path}\n"


@pytest.mark.parametrize("command", ["compare", "plot", "report"])
def test_a_json_file_that_is_not_a_result_says_so(tmp_path: Path, command: str) -> None:
    manifest = tmp_path / "x.json"
    manifest.write_text('{"format": "sandbox-experiment", "version": 1}')

    done = invoke(command, str(manifest))

    assert done.exit_code == 2  # a ResultFormatError: bad input
    assert done.stderr == (
        f"Error: {manifest}: not a sandbox result file (a 'sandbox-experiment' file); pass a "
        "run's result file or the folder that holds the runs\n"
    )


def test_a_misspelt_allocator_gets_a_suggestion(tmp_path: Path) -> None:
    done = invoke("run", "--allocator", "jemaloc", "--results-dir", str(tmp_path))

    assert done.exit_code == 1
    assert done.stderr == (
        "Error: unknown allocator 'jemaloc'; did you mean 'jemalloc'? choose one of: glibc, "
        "glibc-arena2, jemalloc, jemalloc-bg, mimalloc, tcmalloc (or define it under "
        "allocators: in benchmark.yml)\n"
    )
    assert list(tmp_path.iterdir()) == []  # nothing ran, nothing written
