"""notebooks/compare.ipynb runs headless on fake results and draws its figures."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from sandbox.results.files import dump
from tests.fakes import make_group

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "compare.ipynb"


def test_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert "SANDBOX_RESULTS" in code[0].source and "RESULTS =" in code[0].source


def test_notebook_runs_on_fake_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "results" / "fake-experiment"
    for run in make_group("glibc", 2) + make_group("jemalloc", 2):
        dump(run, folder / f"{run.run_id}.json")
    monkeypatch.setenv("SANDBOX_RESULTS", str(folder))

    nb = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        nb,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # RSS by time, by requests, and where the memory is
    text = "".join(o.get("text", "") for o in outputs)
    assert f"4 runs from {folder}" in text
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "\u00d7 glibc" in markdown
    # the pandas tables: medians per group, and the highest RSS in each load batch
    tables = [o["data"]["text/plain"] for o in outputs if "text/html" in o.get("data", {})]
    assert len(tables) == 2
    assert "after_idle_rss_bytes" in tables[0] and "jemalloc" in tables[0]
    assert all(f"batch-{k}" in tables[1] for k in (1, 2, 3)) and "glibc" in tables[1]
