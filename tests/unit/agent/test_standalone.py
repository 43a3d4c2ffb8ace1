"""The agent stands alone: Python 3.8 grammar and library, standard library only, and it runs
from a bare copy under every interpreter this machine has (3.8 to the newest)."""

from __future__ import annotations

import ast
import glob
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import sandbox.agent
from sandbox.agent import protocol

AGENT = Path(sandbox.agent.__file__).resolve().parent
SOURCES = sorted(AGENT.rglob("*.py"))
SITECUSTOMIZE = AGENT / "inject" / "sitecustomize.py"

# Names added to the standard library after 3.8 (attributes, functions, keywords), that the
# agent must not use: a grammar check cannot see them.
NEWER_ATTRIBUTES = {
    "removeprefix",  # str, 3.9
    "removesuffix",  # str, 3.9
    "is_relative_to",  # pathlib, 3.9
    "with_stem",  # pathlib, 3.9
    "readlink",  # pathlib, 3.9
    "bit_count",  # int, 3.10
    "cache",  # functools, 3.9
    "pairwise",  # itertools, 3.10
    "to_thread",  # asyncio, 3.9
    "waitstatus_to_exitcode",  # os, 3.9
    "pidfd_open",  # os, 3.9
    "UTC",  # datetime, 3.11
    "TaskGroup",  # asyncio, 3.11
}
BUILTIN_GENERICS = {"dict", "list", "tuple", "set", "frozenset", "type"}


def newer_than_38(tree: ast.AST) -> list[str]:
    """Uses of post-3.8 library features outside annotations (which are never evaluated)."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Attribute) and node.attr in NEWER_ATTRIBUTES:
            found.append(f"line {node.lineno}: .{node.attr}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "zip"
            and any(k.arg == "strict" for k in node.keywords)
        ):
            found.append(f"line {node.lineno}: zip(strict=)")
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id in BUILTIN_GENERICS
        ):
            found.append(f"line {node.lineno}: {node.value.id}[...] at run time")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            sides = (node.left, node.right)
            if any(isinstance(s, ast.Constant) and s.value is None for s in sides):
                found.append(f"line {node.lineno}: X | None at run time")
        for field, value in ast.iter_fields(node):
            if field in ("annotation", "returns"):
                continue  # `from __future__ import annotations`: strings, never evaluated
            children = value if isinstance(value, list) else [value]
            for child in children:
                if isinstance(child, ast.AST):
                    visit(child)

    visit(tree)
    return found


def test_the_agent_has_sources() -> None:
    names = {p.relative_to(AGENT).as_posix() for p in SOURCES}
    assert {"__init__.py", "allocator.py", "channel.py", "inject/sitecustomize.py"} <= names


def test_sitecustomize_reads_the_variable_the_harness_sets() -> None:
    """It names the variable itself: the agent package is not loaded when it reads it."""
    assert f'os.environ.get("{protocol.DIR_ENV}")' in SITECUSTOMIZE.read_text()


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(AGENT).as_posix())
def test_python_38_grammar(path: Path) -> None:
    ast.parse(path.read_text(), str(path), feature_version=(3, 8))


def test_sitecustomize_parses_as_python_37() -> None:
    """It is read by any interpreter on the PYTHONPATH; an old one must reach the chain."""
    ast.parse(SITECUSTOMIZE.read_text(), str(SITECUSTOMIZE), feature_version=(3, 7))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(AGENT).as_posix())
def test_no_library_newer_than_38(path: Path) -> None:
    assert newer_than_38(ast.parse(path.read_text())) == []


def test_the_newer_library_check_finds_what_it_looks_for() -> None:
    code = "x = a.removesuffix('b')\ny = zip(a, strict=True)\nz: dict[str, int] = dict[str, int]()"
    assert newer_than_38(ast.parse(code)) == [
        "line 1: .removesuffix",
        "line 2: zip(strict=)",
        "line 3: dict[...] at run time",
    ]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(AGENT).as_posix())
def test_standard_library_and_relative_imports_only(path: Path) -> None:
    outside: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        top = {name.split(".")[0] for name in names}
        outside += sorted(t for t in top if t not in sys.stdlib_module_names)
    assert outside == []


def find_python(minor: int) -> str | None:
    """A CPython 3.`minor` on this machine (pyenv's, the system's), or None."""
    patterns = [
        os.path.expanduser(f"~/.pyenv/versions/3.{minor}.*/bin/python3.{minor}"),
        f"/usr/bin/python3.{minor}",
        f"/usr/local/bin/python3.{minor}",
    ]
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            if os.access(path, os.X_OK):
                return path
    return None


# Starts with the agent injected from a bare copy, asks its own agent for `memory`, `hello`,
# `trim` and an op it does not know, forks once, and prints what it saw as JSON.
PROBE = textwrap.dedent(
    """
    import json, os, socket, sys
    def ask(pid, op):
        path = os.path.join(os.environ["SANDBOX_AGENT_DIR"], "agent-%d.sock" % pid)
        if not os.path.exists(path):
            return None
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(path)
            conn.sendall(json.dumps({"op": op}).encode() + b"\\n")
            reply = json.loads(conn.makefile().readline())
            return reply["result"] if reply["ok"] else reply["error"]
    seen = {op: ask(os.getpid(), op) for op in ("memory", "hello", "trim", "collect", "nope")}
    seen["chained"] = getattr(sys.modules["sitecustomize"], "MARK", None)
    seen["imported"] = sorted(m for m in sys.modules if m.split(".")[0] in ("sandbox", "agent"))
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(w)  # so that the read ends if the parent dies
        os.read(r, 1)
        os._exit(0)
    os.close(r)
    import time
    for _ in range(500 if seen["memory"] else 1):
        seen["forked"] = ask(child, "hello")
        if seen["forked"] is not None:
            break
        time.sleep(0.01)
    os.write(w, b"x")
    os.waitpid(child, 0)
    print(json.dumps(seen))
    """
)


def run_bare(tmp_path: Path, python: str) -> tuple[dict[str, object], str]:
    """PROBE under `python`, with the agent copied to a bare folder and a sitecustomize after it."""
    bare = tmp_path / "bare" / "copied_agent"
    shutil.copytree(AGENT, bare, ignore=shutil.ignore_patterns("__pycache__"))
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("MARK = 'theirs'\n")
    folder = tmp_path / "agents"
    folder.mkdir(mode=0o700)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(bare / "inject"), str(theirs)]),
        "SANDBOX_AGENT_DIR": str(folder),
        "PYTHONWARNINGS": "ignore::DeprecationWarning",  # 3.12+: fork() with our thread alive
    }
    done = subprocess.run(
        [python, "-c", PROBE], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    seen: dict[str, object] = json.loads(done.stdout)
    return seen, done.stderr


@pytest.mark.parametrize("minor", range(8, 14))
def test_a_bare_copy_runs_under_python_3(tmp_path: Path, minor: int) -> None:
    python = find_python(minor)
    if python is None:
        pytest.skip(f"no Python 3.{minor} on this machine (looked in ~/.pyenv and /usr/bin)")
    seen, stderr = run_bare(tmp_path, python)
    assert stderr == ""
    memory, hello, forked = seen["memory"], seen["hello"], seen["forked"]
    assert isinstance(memory, dict) and isinstance(hello, dict) and isinstance(forked, dict)
    assert hello["python"].startswith(f"3.{minor}.")
    assert memory["pid"] == hello["pid"] and forked["ppid"] == hello["pid"]
    trim = seen["trim"]
    assert isinstance(trim, dict) and trim["after"]["rss_bytes"] > 0
    if not os.environ.get("LD_PRELOAD"):
        assert memory["allocator"] == "glibc" and memory["in_use_bytes"] > 0
        assert trim["called"] == "malloc_trim(0)"
    collect = seen["collect"]
    assert isinstance(collect, dict) and collect["unreachable"] >= 0
    assert len(collect["counts_before"]) == len(collect["generations"]) == 3
    assert collect["freed"]["rss_bytes"] == (
        collect["before"]["rss_bytes"] - collect["after"]["rss_bytes"]
    )
    assert seen["nope"] == ("unknown op 'nope'; the agent knows collect, hello, memory, ping, trim")
    assert seen["chained"] == "theirs"
    assert seen["imported"] == []  # neither `sandbox` nor the copy's folder name


@pytest.mark.parametrize("minor", [6, 7])
def test_an_older_python_skips_the_agent_in_one_line_and_still_chains(
    tmp_path: Path, minor: int
) -> None:
    python = find_python(minor)
    if python is None:
        pytest.skip(f"no Python 3.{minor} on this machine (looked in ~/.pyenv and /usr/bin)")
    seen, stderr = run_bare(tmp_path, python)
    assert (seen["memory"], seen["hello"], seen["trim"], seen["forked"]) == (None,) * 4
    assert seen["chained"] == "theirs"
    assert stderr.endswith(f"not started: Python 3.{minor} is older than 3.8\n")
    assert stderr.count("\n") == 1
