"""The real server driven by the real Locust (`plans/locustfile.py`), both as subprocesses."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
LOCUST = Path(sys.executable).parent / "locust"
LOCUSTFILE = REPO / "plans" / "locustfile.py"
JSON = {"Content-Type": "application/json"}


def run_locust(
    server: LiveServer,
    tmp_path: Path,
    tags: list[str],
    iterations: int,
    extra: tuple[str, ...] = (),
) -> tuple[dict[str, dict[str, str]], float, str]:
    """Run a drill; return the CSV rows by name, how long Locust took and its log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    command = [
        str(LOCUST), "-f", str(LOCUSTFILE), "--headless", "--tags", *tags,
        "-u", "4", "-r", "4", "-t", "60s", "--iterations", str(iterations),
        "--csv", str(tmp_path / "run"), "--host", server.url, "--only-summary", *extra,
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "run_stats.csv", newline="") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    return rows, elapsed, done.stderr


def counts(rows: dict[str, dict[str, str]]) -> dict[str, tuple[int, int]]:
    return {name: (int(r["Request Count"]), int(r["Failure Count"])) for name, r in rows.items()}


def test_iterations_stop_the_run(live_server: LiveServer, tmp_path: Path) -> None:
    rows, elapsed, _ = run_locust(live_server, tmp_path, ["tiny"], 20)
    assert elapsed < 30, "Locust ran to its --run-time instead of stopping after 20 iterations"
    assert counts(rows) == {"/widgets [tiny]": (20, 0), "Aggregated": (20, 0)}


def test_iterations_count_per_selected_plan(live_server: LiveServer, tmp_path: Path) -> None:
    rows, elapsed, _ = run_locust(live_server, tmp_path, ["small", "tiny"], 10)
    assert elapsed < 30
    assert counts(rows) == {
        "/widgets [small]": (10, 0),
        "/widgets [tiny]": (10, 0),
        "Aggregated": (20, 0),
    }
    stats = httpx.get(f"{live_server.url}/stats").json()
    assert stats == {"requests_done": 20, "requests_rejected": 0, "in_flight": 0}


def test_no_final_csv_quits_without_the_wait_and_the_json_file_holds_every_request(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """The harness's way (`--no-final-csv`, final figures from --json-file): Locust quits after
    the last request instead of waiting a second and a half for its next CSV write."""
    extra = ("--no-final-csv", "--json-file", str(tmp_path / "final"))
    _, _, log = run_locust(live_server, tmp_path, ["tiny"], 20, extra)
    entries = json.loads((tmp_path / "final.json").read_text())
    assert sum(e["num_requests"] for e in entries) == 20
    assert "quitting without waiting for the next CSV write" in log
    _, _, log = run_locust(live_server, tmp_path, ["tiny"], 20)
    assert "quitting without waiting" not in log


def test_bad_requests_do_not_hurt_the_server(live_server: LiveServer) -> None:
    url = f"{live_server.url}/widgets"
    pid = httpx.get(f"{live_server.url}/health").json()["pid"]
    assert pid == live_server.proc.pid
    too_big = httpx.post(url, content=b"x" * (9 * 1024 * 1024), headers=JSON, timeout=30)
    assert too_big.status_code == 413
    assert httpx.post(url, content=b"{", headers=JSON).status_code == 400
    assert httpx.post(url, content=b"{}", headers={"Content-Type": "text/plain"}).status_code == 415
    health = httpx.get(f"{live_server.url}/health").json()
    assert health["pid"] == pid
    assert live_server.proc.poll() is None
    body = (REPO / "plans" / "tiny.json").read_bytes()
    assert httpx.post(url, content=body, headers=JSON).status_code == 201
