"""`sandbox inspect` through click's CliRunner, with the inspection itself patched out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from sandbox.cli.main import cli
from sandbox.errors import TargetExitedError
from sandbox.inspector import inspection, preflight, render, smaps
from sandbox.inspector import watch as watching
from sandbox.inspector.detection import Detection
from sandbox.inspector.snapshot import Counters, Snapshot
from sandbox.units import MIB

DATA = Path(__file__).resolve().parents[2] / "data"
MEMORY = smaps.summarise(smaps.parse((DATA / "smaps_small.txt").read_text()))


def snapshot(**kw: Any) -> Snapshot:
    fields: dict[str, Any] = {
        "pid": 42,
        "command": "python app.py",
        "taken_at": "2026-01-01T00:00:00.000Z",
        "allocator": "glibc",
        "detection": Detection("glibc", None, (), None, True),
        "memory": MEMORY,
        "counters": Counters("glibc", 10 * MIB, 12 * MIB, {"arena": 1}, "mallinfo2()"),
        "stopped_ms": 55.0,
        "attach_ms": 40.0,
        "route": "gdb",
    }
    return Snapshot(**{**fields, **kw})


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["inspect", *args], prog_name="sandbox")


class FakeTake:
    def __init__(self, *results: Snapshot | Exception) -> None:
        self.results = list(results)
        self.calls: list[tuple[int, dict[str, Any]]] = []

    def __call__(self, pid: int, **kw: Any) -> Snapshot:
        self.calls.append((pid, kw))
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTake:
    take = FakeTake(snapshot())
    monkeypatch.setattr(inspection, "take", take)
    return take


def test_text(fake: FakeTake) -> None:
    done = invoke("42")
    assert (done.exit_code, done.stderr) == (0, "")
    assert done.stdout == render.snapshot_text(snapshot()) + "\n"
    assert fake.calls == [(42, {"via": "auto", "attach": True, "trim": False})]


def test_json(fake: FakeTake) -> None:
    done = invoke("42", "--json")
    assert done.exit_code == 0
    assert json.loads(done.stdout) == snapshot().to_dict()


def test_trim_and_no_attach_are_passed_on(fake: FakeTake, monkeypatch: pytest.MonkeyPatch) -> None:
    assert invoke("42", "--trim").exit_code == 0
    fake.results.append(snapshot(counters=None, stopped_ms=None, attach_ms=None, route="proc"))
    assert invoke("42", "--no-attach").exit_code == 0
    fake.results.append(snapshot())
    assert invoke("42", "--via", "gdb").exit_code == 0
    assert fake.calls == [
        (42, {"via": "auto", "attach": True, "trim": True}),
        (42, {"via": "auto", "attach": False, "trim": False}),
        (42, {"via": "gdb", "attach": True, "trim": False}),
    ]


def test_recheck_drops_the_kept_preflight_verdicts(
    fake: FakeTake, monkeypatch: pytest.MonkeyPatch
) -> None:
    forgotten: list[bool] = []
    monkeypatch.setattr(preflight, "forget", lambda: forgotten.append(True))
    assert invoke("42").exit_code == 0
    assert forgotten == []
    fake.results.append(snapshot())
    assert invoke("42", "--recheck").exit_code == 0
    assert forgotten == [True]


def test_an_unrecognised_allocator_prints_the_split_then_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = snapshot(allocator="libx.so", counters=None, problem="malloc comes from /opt/libx.so")
    monkeypatch.setattr(inspection, "take", FakeTake(s))
    done = invoke("42")
    assert done.exit_code == 1
    assert done.stdout == render.snapshot_text(s) + "\n"
    assert "glibc arena heaps" in done.stdout
    assert done.stderr == "Error: malloc comes from /opt/libx.so\n"


def test_an_error_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inspection, "take", FakeTake(TargetExitedError("no process with PID 42")))
    done = invoke("42")
    assert (done.exit_code, done.stdout, done.stderr) == (1, "", "Error: no process with PID 42\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "2"], "--interval goes with --watch"),
        (["--limit", "2GiB"], "--limit goes with --watch"),
        (
            ["--trim", "--watch", "10"],
            "--trim and --watch do not go together; trim after the watch",
        ),
        (["--trim", "--no-attach"], "--trim needs to attach; drop --no-attach"),
        (["--via", "gdb", "--no-attach"], "--via reads counters; drop --no-attach"),
    ],
)
def test_usage_errors(fake: FakeTake, args: list[str], message: str) -> None:
    done = invoke("42", *args)
    assert done.exit_code == 2
    assert done.stderr.splitlines()[-1] == f"Error: {message}"
    assert fake.calls == []


def test_a_pid_must_be_a_positive_number() -> None:
    assert invoke("0").exit_code == 2
    assert invoke("abc").exit_code == 2


def test_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    looks = [snapshot(), snapshot(memory=MEMORY, counters=Counters("glibc", 90 * MIB, 95 * MIB))]
    seen: dict[str, Any] = {}

    def fake_watch(pid: int, duration_s: float, interval_s: float, **kw: Any) -> watching.Watch:
        seen.update(pid=pid, duration_s=duration_s, interval_s=interval_s, attach=kw["attach"])
        seen.update(limit_bytes=kw["limit_bytes"])
        samples = tuple(watching.Sample(t, s) for t, s in zip((0.0, 5.0), looks, strict=True))
        for sample in samples:
            if kw["on_sample"] is not None:
                kw["on_sample"](sample)
        return watching.Watch(pid, interval_s, samples, limit_bytes=kw["limit_bytes"])

    monkeypatch.setattr(watching, "watch", fake_watch)
    done = invoke("42", "--watch", "5", "--interval", "2.5")
    assert done.exit_code == 0
    result = watching.Watch(
        42, 2.5, tuple(watching.Sample(t, s) for t, s in zip((0.0, 5.0), looks, strict=True))
    )
    lines = [render.sample_line(s) for s in result.samples]
    assert done.stdout == "\n".join([*lines, render.watch_end(result)]) + "\n"
    assert seen == {
        "pid": 42,
        "duration_s": 5.0,
        "interval_s": 2.5,
        "attach": True,
        "limit_bytes": None,
    }

    done = invoke("42", "--watch", "5", "--json")
    assert done.exit_code == 0
    data = json.loads(done.stdout)
    assert (data["format"], data["interval_s"]) == ("sandbox-inspect-watch", 5.0)
    assert data["verdict"] == result.verdict

    done = invoke("42", "--watch", "5", "--limit", "2GiB", "--json")
    assert done.exit_code == 0 and seen["limit_bytes"] == 2048 * MIB
    assert json.loads(done.stdout)["limit"]["limit_bytes"] == 2048 * MIB


def test_a_limit_that_is_not_a_size() -> None:
    done = invoke("42", "--watch", "5", "--limit", "lots")
    assert done.exit_code == 2
    assert done.stderr.splitlines()[-1].startswith("Error: Invalid value for '--limit': 'lots' is")
