from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sandbox.allocators.maps import allocator_libraries, is_allocator_library, mapped_paths


def test_mapped_paths_of_self() -> None:
    paths = mapped_paths()
    assert paths
    assert all(p.startswith("/") for p in paths)
    assert len(paths) == len(set(paths))
    assert any(os.path.basename(p).startswith("libc.so") or "libc-" in p for p in paths)


def test_mapped_paths_of_other_process() -> None:
    code = "import sys; print('ready', flush=True); sys.stdin.read()"
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"  # exec is over: its maps are complete
        paths = mapped_paths(child.pid)
        assert any(os.path.basename(p).startswith("python") for p in paths)
    finally:
        child.communicate(b"")


def test_mapped_paths_of_missing_process() -> None:
    with pytest.raises(FileNotFoundError):
        mapped_paths(2**22 + 1)  # above the kernel's pid_max limit


@pytest.mark.parametrize(
    "path",
    [
        "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
        "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2.0",
        "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
        "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4.5.10",
        "/opt/lib/libmimalloc-secure.so",
        "/usr/local/lib/libsnmalloc.so",
    ],
)
def test_allocator_names(path: str) -> None:
    assert is_allocator_library(path)


@pytest.mark.parametrize(
    "path",
    [
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0",
        "/usr/lib/x86_64-linux-gnu/libabsl_malloc_internal.so.20220623",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/tmp/libjemalloc.so.2/not-a-library",
        "/usr/lib/jemalloc.py",
    ],
)
def test_not_allocator_names(path: str) -> None:
    assert not is_allocator_library(path)


def test_allocator_libraries_keeps_order() -> None:
    paths = ["/lib/libc.so.6", "/lib/libtcmalloc_minimal.so.4", "/lib/libjemalloc.so.2"]
    assert allocator_libraries(paths) == paths[1:]


def test_this_process_has_no_allocator_unless_preloaded() -> None:
    if os.environ.get("LD_PRELOAD"):
        pytest.skip("LD_PRELOAD is set")
    assert allocator_libraries(mapped_paths()) == []


def test_preloaded_allocator_is_seen() -> None:
    library = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
    if not os.path.exists(library):
        pytest.skip(f"{library} not installed (apt-get install libjemalloc2)")
    code = "from sandbox.allocators.maps import *; print(allocator_libraries(mapped_paths()))"
    env = {**os.environ, "LD_PRELOAD": library}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert out.strip() == repr([library])
