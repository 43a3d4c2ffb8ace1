"""Which allocator serves malloc, from /proc/PID/maps and LD_PRELOAD."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sandbox.allocators import registry as allocators
from sandbox.errors import AllocatorError
from sandbox.inspector.detection import choose, detect, family_of, read_environ

JE = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
TC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


@pytest.mark.parametrize(
    ("owner", "family"),
    [
        (None, "glibc"),
        ("/lib/x86_64-linux-gnu/libc.so.6", "glibc"),
        ("/lib/libc-2.31.so", "glibc"),
        (JE, "jemalloc"),
        (TC, "tcmalloc"),
        ("/usr/lib/libmimalloc.so.2.0", "mimalloc"),
        ("/opt/lib/libsnmallocshim.so", "libsnmallocshim.so"),
    ],
)
def test_family_of(owner: str | None, family: str) -> None:
    assert family_of(owner) == family


def test_choose_prefers_what_ld_preload_names() -> None:
    assert choose([], JE) is None
    assert choose([JE, TC], None) == JE
    assert choose([JE, TC], TC) == TC
    assert choose([JE, TC], f"/other/libfoo.so:{TC}") == TC
    assert choose([JE, TC], "libtcmalloc_minimal.so.4") == TC  # a bare soname


def test_read_environ_of_self() -> None:
    env = read_environ(os.getpid())
    assert env is not None and env.get("PATH") == os.environ.get("PATH")


def test_detect_glibc_child() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"},
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        found = detect(child.pid)
    finally:
        child.communicate(b"")
    assert (found.family, found.library, found.mapped, found.ld_preload) == (
        "glibc",
        None,
        (),
        None,
    )
    assert found.known and found.environ_readable


def test_detect_a_preloaded_jemalloc() -> None:
    try:
        path = allocators.resolve("jemalloc").path
    except AllocatorError as exc:
        pytest.skip(str(exc))
    assert path is not None
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "LD_PRELOAD": path},
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        found = detect(child.pid)
    finally:
        child.communicate(b"")
    assert (found.family, found.ld_preload) == ("jemalloc", path)
    assert found.library is not None and os.path.samefile(found.library, path)
    assert found.to_dict()["mapped_allocators"] == list(found.mapped)
