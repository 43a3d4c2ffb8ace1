"""The preflight: judging canaries, the verdict cache, what the canaries run as, and real
canaries looked at by fake looks (no gdb)."""

from __future__ import annotations

import ast
import json
import os
import signal
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from sandbox.errors import InspectError
from sandbox.inspector import canary, preflight
from sandbox.inspector.debugger import Debugger
from sandbox.inspector.preflight import CanaryResult, Context, Verdict

EPOCH = 1_700_000_000.0
GDB = Debugger("/opt/gdb/bin/gdb", (18, 1), "GNU gdb (GDB) 18.1", "0123456789abcdef")
HERE = Context(sys.executable, {})


def sleeper(looks: int = 3) -> CanaryResult:
    return CanaryResult("sleep", looks, iterations=7)


def busy(
    wrong: int = 0, errors: tuple[str, ...] = (), look_error: str | None = None
) -> CanaryResult:
    return CanaryResult(
        "busy", 3, look_error=look_error, iterations=40, wrong=wrong, errors=errors, numpy=True
    )


def verdict(
    key: str = "k1", epoch: float = EPOCH, canaries: tuple[CanaryResult, ...] | None = None
) -> Verdict:
    return Verdict(
        key=key,
        checked_at="2023-11-14T22:13:20Z",
        took_s=2.34,
        debugger=GDB.to_dict(),
        register_state="2,696-byte register state",
        interpreter=sys.executable,
        canaries=(sleeper(), busy()) if canaries is None else canaries,
        note="the canaries ran without the target's environment",
        checked_epoch=epoch,
    )


def fake_interpreter(folder: Path, body: str) -> str:
    """An 'interpreter' (sh) that ignores the canary script and runs `body`; its path."""
    script = folder / "python"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorter pauses between looks: what is judged does not depend on their length."""
    monkeypatch.setattr(preflight, "PAUSE_S", 0.05)


# --- the canary itself ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", preflight.KINDS)
def test_the_canary_works_until_its_stdin_closes(kind: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, canary.__file__, kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(0.5)
        assert proc.poll() is None  # still at work
        out, err = proc.communicate("", timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert report["kind"] == kind and report["iterations"] > 0
    assert report["wrong"] == 0 and report["errors"] == []
    assert report["numpy"] == (kind == "busy")


def test_the_canary_refuses_an_unknown_kind() -> None:
    done = subprocess.run(
        [sys.executable, canary.__file__, "nap"], capture_output=True, text=True, timeout=10
    )
    assert (done.returncode, done.stdout, done.stderr) == (2, "", "usage: canary.py sleep|busy\n")


def test_the_canary_stays_within_python_3_7_syntax() -> None:
    """It runs under the target's interpreter, which may be older than the sandbox's."""
    source = Path(canary.__file__).read_text()
    tree = ast.parse(source, feature_version=(3, 7))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert "json" in imported
    assert imported - {"numpy"} <= sys.stdlib_module_names  # numpy only where it is installed


# --- judging a canary -----------------------------------------------------------------------


def test_a_clean_canary_passes() -> None:
    assert busy().failure is None
    assert CanaryResult("sleep", 3).failure is None


def test_a_canary_that_died() -> None:
    result = CanaryResult("sleep", 2, died="killed by SIGKILL")
    assert result.failure == "the sleep canary died (killed by SIGKILL) after look 2"


def test_a_look_that_failed() -> None:
    result = CanaryResult("busy", 1, look_error="gdb ended (exit 1) without an answer: x")
    assert result.failure == (
        "a look at the busy canary failed: gdb ended (exit 1) without an answer: x"
    )


def test_wrong_results() -> None:
    result = busy(wrong=2, errors=("wrong result: floating-point sum", "wrong result: SHA-256"))
    assert result.failure == (
        "the busy canary computed 2 wrong result(s): wrong result: floating-point sum"
    )


def test_wrong_results_without_their_words_still_fail() -> None:
    assert busy(wrong=1).failure == "the busy canary computed 1 wrong result(s)"


def test_an_error_it_did_not_ask_for() -> None:
    result = CanaryResult("sleep", 3, errors=("time.sleep raised OSError: [Errno 514] Unknown",))
    assert result.failure == (
        "the sleep canary got an error it did not ask for: "
        "time.sleep raised OSError: [Errno 514] Unknown"
    )


def test_every_sign_at_once() -> None:
    result = CanaryResult(
        "busy",
        1,
        died="exit code 1: Traceback",
        look_error="boom",
        wrong=1,
        errors=("wrong result: numpy multiply-add and sum",),
    )
    assert result.failure == (
        "the busy canary died (exit code 1: Traceback) after look 1; "
        "a look at the busy canary failed: boom; "
        "the busy canary computed 1 wrong result(s): wrong result: numpy multiply-add and sum"
    )


def test_the_verdict_is_its_first_failure() -> None:
    assert verdict().passed and verdict().failure is None
    failed = verdict(canaries=(sleeper(), busy(wrong=1, errors=("wrong result: x",))))
    assert not failed.passed
    assert failed.failure == "the busy canary computed 1 wrong result(s): wrong result: x"


# --- the verdict's JSON form and summary ------------------------------------------------------


def test_verdict_round_trip() -> None:
    original = verdict(canaries=(sleeper(), busy(look_error="boom", errors=("e1", "e2"))))
    data = json.loads(json.dumps(original.to_dict()))
    assert data["passed"] is False and data["failure"] == original.failure
    assert data["cached"] is False and data["summary"] == original.summary()
    back = Verdict.from_dict(data)
    assert back == original and back.checked_epoch == EPOCH and not back.cached
    kept = Verdict.from_dict(data, cached=True)
    assert kept.cached and kept == replace(original, cached=True)
    assert kept.to_dict()["cached"] is True


def test_summary() -> None:
    assert verdict().summary() == (
        "preflight passed: 6 looks at 2 canaries (sleep, busy), all alive and right (took 2.3 s)"
    )
    failed = verdict(canaries=(CanaryResult("sleep", 1, died="killed by SIGSEGV"),))
    assert replace(failed, cached=True).summary() == (
        "preflight failed: the sleep canary died (killed by SIGSEGV) after look 1 "
        "(cached from 2023-11-14T22:13:20Z)"
    )


def test_refusal() -> None:
    failed = verdict(canaries=(CanaryResult("sleep", 1, died="killed by SIGKILL"),))
    assert preflight.refusal(failed, 42) == (
        "not attaching to process 42: the preflight with /opt/gdb/bin/gdb (gdb 18.1) failed on "
        "this host: the sleep canary died (killed by SIGKILL) after look 1; the process was not "
        "touched. Use a gdb 14 or newer (scripts/setup.sh installs one into .venv; or set "
        "SANDBOX_GDB), or pass --no-attach for the RSS split alone"
    )


# --- the cache --------------------------------------------------------------------------------


def test_cache_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(preflight.CACHE_ENV, str(tmp_path / "mine.json"))
    assert preflight.cache_path() == tmp_path / "mine.json"
    monkeypatch.delenv(preflight.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert preflight.cache_path() == tmp_path / "allocator-sandbox" / "inspect-preflight.json"


def test_remember_then_cached(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cache.json"
    assert preflight.cached("k1", path, now=EPOCH) is None
    preflight.remember(verdict("k1"), path)
    preflight.remember(verdict("k2", canaries=(sleeper(1),)), path)
    found = preflight.cached("k1", path, now=EPOCH + 60)
    assert found is not None and found.cached
    assert found == replace(verdict("k1"), cached=True)
    other = preflight.cached("k2", path, now=EPOCH + 60)
    assert other is not None and other.canaries == (sleeper(1),)
    assert preflight.cached("k3", path, now=EPOCH + 60) is None


def test_cached_uses_the_environment_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(preflight.CACHE_ENV, str(tmp_path / "cache.json"))
    preflight.remember(verdict())
    assert (tmp_path / "cache.json").is_file()
    assert preflight.cached("k1", now=EPOCH + 1) is not None


def test_an_old_verdict_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    preflight.remember(verdict(), path)
    assert preflight.cached("k1", path, now=EPOCH + preflight.MAX_AGE_S) is not None
    assert preflight.cached("k1", path, now=EPOCH + preflight.MAX_AGE_S + 1) is None
    assert preflight.cached("k1", path, now=EPOCH - 60) is None  # from the future: a clock jump


@pytest.mark.parametrize(
    "text",
    [
        "not json{",
        "[]",
        json.dumps({"format": "something-else", "version": 1, "verdicts": {}}),
        json.dumps({"format": preflight.FORMAT, "version": 99, "verdicts": {}}),
        json.dumps({"format": preflight.FORMAT, "version": 1, "verdicts": []}),
        json.dumps({"format": preflight.FORMAT, "version": 1, "verdicts": {"k1": "x"}}),
        json.dumps({"format": preflight.FORMAT, "version": 1, "verdicts": {"k1": {"key": "k1"}}}),
    ],
)
def test_a_malformed_cache_is_ignored(tmp_path: Path, text: str) -> None:
    path = tmp_path / "cache.json"
    path.write_text(text)
    assert preflight.cached("k1", path, now=EPOCH) is None
    preflight.remember(verdict(), path)  # and replaced
    assert preflight.cached("k1", path, now=EPOCH) is not None


def test_another_formats_verdict_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    preflight.remember(verdict(), path)
    data = json.loads(path.read_text())
    data["format"] = "sandbox-inspect"
    path.write_text(json.dumps(data))
    assert preflight.cached("k1", path, now=EPOCH) is None


def test_forget(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    preflight.remember(verdict(), path)
    preflight.forget(path)
    assert not path.exists()
    assert preflight.cached("k1", path, now=EPOCH) is None
    preflight.forget(path)  # nothing to forget: no error


def test_remember_where_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    path = blocker / "cache.json"  # its folder is a file: unwritable even for root
    preflight.remember(verdict(), path)
    assert preflight.cached("k1", path, now=EPOCH) is None
    assert blocker.read_text() == ""


# --- the key --------------------------------------------------------------------------------


def test_key_of_changes_with_what_the_verdict_depends_on(tmp_path: Path) -> None:
    python = tmp_path / "python3"
    python.write_bytes(b"v1")
    context = Context(str(python), {"MALLOC_CONF": "narenas:1"})
    flags = ("fpu", "sse", "avx")
    key = preflight.key_of(GDB, context, flags)
    assert len(key) == 24
    assert preflight.key_of(GDB, Context(str(python), {"MALLOC_CONF": "narenas:1"}), flags) == key
    assert preflight.key_of(GDB, context, ("avx", "fpu", "sse")) == key  # the flags' order
    assert preflight.key_of(GDB, replace(context, note="a note"), flags) == key
    changed = [
        preflight.key_of(replace(GDB, build="fedcba9876543210"), context, flags),
        preflight.key_of(replace(GDB, path="/usr/bin/gdb"), context, flags),
        preflight.key_of(replace(GDB, banner="GNU gdb (GDB) 18.2"), context, flags),
        preflight.key_of(GDB, replace(context, interpreter=sys.executable), flags),
        preflight.key_of(GDB, replace(context, environ={"MALLOC_CONF": "narenas:2"}), flags),
        preflight.key_of(GDB, replace(context, environ={}), flags),
        preflight.key_of(GDB, context, (*flags, "amx_tile")),
    ]
    assert key not in changed and len(set(changed)) == len(changed)
    python.write_bytes(b"v2, rebuilt")  # the same interpreter path, another build
    assert preflight.key_of(GDB, context, flags) != key


# --- what the canaries run as ---------------------------------------------------------------


def test_context_for_keeps_the_allocator_environment(tmp_path: Path) -> None:
    library = tmp_path / "libjemalloc.so.2"
    library.write_bytes(b"")
    environ = {
        "LD_PRELOAD": str(library),
        "MALLOC_CONF": "background_thread:true",
        "GLIBC_TUNABLES": "glibc.malloc.arena_max=2",
        "PYTHONMALLOC": "malloc",
        "PATH": "/usr/bin",
        "SANDBOX_AGENT_DIR": str(tmp_path),
        "HOME": "/root",
    }
    context = preflight.context_for(os.getpid(), environ)
    assert dict(context.environ) == {
        "LD_PRELOAD": str(library),
        "MALLOC_CONF": "background_thread:true",
        "GLIBC_TUNABLES": "glibc.malloc.arena_max=2",
        "PYTHONMALLOC": "malloc",
    }
    assert os.path.samefile(context.interpreter, sys.executable)
    assert context.note is None


@pytest.mark.parametrize("separator", [":", " "])
def test_context_for_drops_a_preload_that_is_not_here(tmp_path: Path, separator: str) -> None:
    present = tmp_path / "libtcmalloc.so"
    present.write_bytes(b"")
    preload = f"{present}{separator}/nowhere/libjemalloc.so.2"
    context = preflight.context_for(os.getpid(), {"LD_PRELOAD": preload, "MALLOC_CONF": "x"})
    assert dict(context.environ) == {"MALLOC_CONF": "x"}
    assert context.note == f"LD_PRELOAD={preload} is not all on this filesystem: left out"


def test_context_for_without_the_targets_environment() -> None:
    context = preflight.context_for(os.getpid(), None)
    assert dict(context.environ) == {}
    assert context.note == "the target's environment is unreadable: the canaries ran without it"


def test_context_for_a_process_that_is_not_python() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        context = preflight.context_for(child.pid, {"MALLOC_CONF": "x"})
    finally:
        child.kill()
        child.wait()
    assert context.interpreter == sys.executable
    assert dict(context.environ) == {"MALLOC_CONF": "x"}
    assert context.note is not None
    assert context.note.startswith(f"the canaries ran under {sys.executable}: the target's ")
    assert context.note.endswith("is not a Python interpreter this process can run")


def test_the_canaries_environment_is_the_targets_allocators(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("LD_PRELOAD", "PYTHONMALLOC", "MALLOC_ARENA_MAX", "GLIBC_TUNABLES"):
        monkeypatch.setenv(name, "sandbox's own")
    for name in ("MIMALLOC_SHOW_STATS", "TCMALLOC_RELEASE_RATE", "_RJEM_MALLOC_CONF"):
        monkeypatch.setenv(name, "sandbox's own")
    monkeypatch.setenv("SANDBOX_AGENT_DIR", "/tmp/agents")
    monkeypatch.setenv("HOME", "/home/someone")
    env = preflight._environment(Context(sys.executable, {"MALLOC_CONF": "narenas:1"}))
    assert env["HOME"] == "/home/someone" and env["MALLOC_CONF"] == "narenas:1"
    assert env["PATH"] == os.environ["PATH"]
    assert [k for k in env if preflight.ALLOCATOR_ENV.match(k)] == ["MALLOC_CONF"]
    assert "SANDBOX_AGENT_DIR" not in env and "PYTHONMALLOC" not in env


# --- real canaries, fake looks ----------------------------------------------------------------


@pytest.mark.usefixtures("quick")
@pytest.mark.parametrize("kind", preflight.KINDS)
def test_a_look_that_does_nothing_leaves_the_canary_right(kind: str) -> None:
    calls: list[tuple[int, bool]] = []

    def look(pid: int, trim: bool) -> None:
        calls.append((pid, trim))

    result = preflight.check_canary(kind, HERE, look)
    assert result.failure is None
    assert (result.kind, result.looks, result.died, result.look_error) == (kind, 3, None, None)
    assert result.iterations > 0 and result.wrong == 0 and result.errors == ()
    assert [trim for _, trim in calls] == list(preflight.LOOKS)
    assert len({pid for pid, _ in calls}) == 1 and calls[0][0] != os.getpid()
    assert result.numpy == (kind == "busy")  # numpy is one of the sandbox's own dependencies


@pytest.mark.usefixtures("quick")
def test_a_look_that_kills_the_canary() -> None:
    def look(pid: int, trim: bool) -> None:
        os.kill(pid, signal.SIGKILL)
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # dead, left for check_canary to reap

    result = preflight.check_canary("sleep", HERE, look)
    assert (result.died, result.looks, result.look_error) == ("killed by SIGKILL", 1, None)
    assert result.failure == "the sleep canary died (killed by SIGKILL) after look 1"


@pytest.mark.usefixtures("quick")
def test_a_look_that_fails_is_kept() -> None:
    calls: list[int] = []

    def look(pid: int, trim: bool) -> None:
        calls.append(pid)
        raise InspectError(f"a call inside process {pid} failed and was undone: boom")

    result = preflight.check_canary("sleep", HERE, look)
    assert len(calls) == 1 and result.looks == 1 and result.died is None
    assert result.look_error == f"a call inside process {calls[0]} failed and was undone: boom"
    assert result.iterations > 0  # the canary was alive and reported
    assert result.failure == f"a look at the sleep canary failed: {result.look_error}"


def test_a_canary_that_does_not_start(tmp_path: Path) -> None:
    python = fake_interpreter(tmp_path, 'echo "No module named json" >&2\nexit 1\n')
    with pytest.raises(InspectError) as info:
        preflight.check_canary("busy", Context(python, {}), lambda pid, trim: None)
    assert str(info.value) == (
        f"the preflight's busy canary did not start under {python}: No module named json"
    )


@pytest.mark.usefixtures("quick")
def test_a_canary_that_fails_after_the_looks(tmp_path: Path) -> None:
    body = 'echo ready\ncat >/dev/null\necho "Fatal Python error: Aborted" >&2\nexit 1\n'
    python = fake_interpreter(tmp_path, body)

    def look(pid: int, trim: bool) -> None:
        raise InspectError("gdb said: Couldn't write extended state status")

    result = preflight.check_canary("sleep", Context(python, {}), look)
    assert result.died == "exit code 1: Fatal Python error: Aborted"
    assert result.look_error == "gdb said: Couldn't write extended state status"
    assert result.failure is not None and "a look at the sleep canary failed" in result.failure


@pytest.mark.usefixtures("quick")
def test_a_canary_without_a_report(tmp_path: Path) -> None:
    python = fake_interpreter(tmp_path, "echo ready\ncat >/dev/null\necho 'not json'\n")
    result = preflight.check_canary("busy", Context(python, {}), lambda pid, trim: None)
    assert result.looks == 3
    assert result.died == "no report: 'not json\\n'"


@pytest.mark.usefixtures("quick")
def test_a_canary_that_hangs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "REPORT_TIMEOUT_S", 0.2)
    python = fake_interpreter(tmp_path, "echo ready\nexec sleep 30\n")
    result = preflight.check_canary("sleep", Context(python, {}), lambda pid, trim: None)
    assert result.died == "hung: it did not report"
    assert result.failure == "the sleep canary died (hung: it did not report) after look 3"


# --- ensure: cached, or run and kept --------------------------------------------------------


@pytest.mark.usefixtures("quick")
def test_ensure_runs_once_then_uses_the_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "cache.json"
    monkeypatch.setenv(preflight.CACHE_ENV, str(path))
    calls: list[tuple[int, bool]] = []

    def look(pid: int, trim: bool) -> None:
        calls.append((pid, trim))

    flags = ("fpu", "sse")
    first = preflight.ensure(GDB, HERE, look, flags=flags)
    assert first.passed and not first.cached
    assert first.key == preflight.key_of(GDB, HERE, flags)
    assert [c.kind for c in first.canaries] == list(preflight.KINDS)
    assert len(calls) == len(preflight.KINDS) * len(preflight.LOOKS)
    assert first.debugger == GDB.to_dict() and first.interpreter == sys.executable
    assert path.is_file()

    second = preflight.ensure(GDB, HERE, look, flags=flags)
    assert len(calls) == 6  # not looked again
    assert second.cached and second == replace(first, cached=True)
    assert second.summary().endswith(f"(cached from {first.checked_at})")

    third = preflight.ensure(GDB, HERE, look, flags=flags, recheck=True)
    assert len(calls) == 12 and not third.cached and third.passed


@pytest.mark.usefixtures("quick")
def test_ensure_stops_at_the_first_failing_canary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(preflight.CACHE_ENV, str(tmp_path / "cache.json"))

    def look(pid: int, trim: bool) -> None:
        raise InspectError("no")

    failed = preflight.ensure(GDB, HERE, look, flags=())
    assert [c.kind for c in failed.canaries] == ["sleep"]
    assert failed.failure == "a look at the sleep canary failed: no"
    again = preflight.ensure(GDB, HERE, look, flags=())
    assert again.cached and not again.passed  # a failure is kept too
