from __future__ import annotations

import os
from pathlib import Path
from unittest.mock import patch

import pytest

from sandbox.allocators import registry as allocators
from sandbox.allocators.registry import Allocator
from sandbox.errors import AllocatorError


def test_builtin_names() -> None:
    assert {"glibc", "glibc-arena2", "jemalloc", "jemalloc-bg", "mimalloc", "tcmalloc"} <= set(
        allocators.BUILTIN
    )
    assert allocators.BUILTIN["glibc-arena2"].env == {"MALLOC_ARENA_MAX": "2"}
    assert "background_thread:true" in allocators.BUILTIN["jemalloc-bg"].env["MALLOC_CONF"]


def test_glibc_preloads_nothing() -> None:
    resolved = allocators.resolve("glibc-arena2")
    assert resolved.path is None
    assert resolved.environ() == {"MALLOC_ARENA_MAX": "2"}


def test_unknown_allocator_suggests_the_closest_name() -> None:
    with pytest.raises(AllocatorError) as info:
        allocators.resolve("jemaloc")
    assert str(info.value) == (
        "unknown allocator 'jemaloc'; did you mean 'jemalloc'? choose one of: glibc, "
        "glibc-arena2, jemalloc, jemalloc-bg, mimalloc, tcmalloc (or define it under "
        "allocators: in benchmark.yml)"
    )


def test_unknown_allocator_without_a_close_name_only_lists_them() -> None:
    with pytest.raises(AllocatorError) as info:
        allocators.resolve("hoard")
    assert str(info.value) == (
        "unknown allocator 'hoard'; choose one of: glibc, glibc-arena2, jemalloc, jemalloc-bg, "
        "mimalloc, tcmalloc (or define it under allocators: in benchmark.yml)"
    )


def test_unknown_allocator_suggests_a_name_from_benchmark_yml() -> None:
    custom = {"hardened": Allocator("hardened", "libhardened_malloc.so", {})}
    with pytest.raises(AllocatorError) as info:
        allocators.resolve("hardend", custom)
    assert str(info.value).startswith("unknown allocator 'hardend'; did you mean 'hardened'? ")


def test_missing_soname_names_the_package() -> None:
    custom = {"nope": Allocator("nope", "libnope.so.9", {}, "libnope9")}
    with pytest.raises(AllocatorError) as info:
        allocators.resolve("nope", custom)
    assert str(info.value) == (
        "nope: libnope.so.9 not found; install it with 'apt-get install libnope9' "
        "or set allocators.nope.library in benchmark.yml"
    )


def test_missing_path() -> None:
    custom = {"jemalloc": Allocator("jemalloc", "/nowhere/libjemalloc.so.2", {}, "libjemalloc2")}
    with pytest.raises(AllocatorError) as info:
        allocators.resolve("jemalloc", custom)
    assert str(info.value) == (
        "jemalloc: library /nowhere/libjemalloc.so.2 not found; install it with "
        "'apt-get install libjemalloc2' or fix allocators.jemalloc.library in benchmark.yml"
    )


def test_existing_path_resolves(tmp_path: Path) -> None:
    lib = tmp_path / "libfake.so"
    lib.write_bytes(b"")
    custom = {"fake": Allocator("fake", str(lib), {"X": "1"})}
    resolved = allocators.resolve("fake", custom)
    assert resolved.environ() == {"X": "1", "LD_PRELOAD": str(lib)}


def test_verify_glibc_in_this_process() -> None:
    # The test process runs without LD_PRELOAD: glibc verification passes, a preload fails.
    if os.environ.get("LD_PRELOAD"):
        pytest.skip("test process itself has LD_PRELOAD")
    assert allocators.verify_loaded(allocators.resolve("glibc"), os.getpid()) == []
    fake = allocators.ResolvedAllocator(Allocator("fake", "/x/libfake.so"), "/x/libfake.so")
    with pytest.raises(AllocatorError, match=r"^fake: /x/libfake.so is not mapped in the server"):
        allocators.verify_loaded(fake, os.getpid())


def test_malloc_owner_must_be_the_preloaded_library() -> None:
    je = allocators.ResolvedAllocator(Allocator("je", "/x/libjemalloc.so.2"), "/x/libjemalloc.so.2")
    allocators.verify_malloc_owner(je, "/x/libjemalloc.so.2")
    allocators.verify_malloc_owner(je, None)  # a server that cannot tell: the map check stands
    with pytest.raises(AllocatorError) as info:
        allocators.verify_malloc_owner(je, "/lib/x86_64-linux-gnu/libc.so.6")
    assert str(info.value) == (
        "je: /x/libjemalloc.so.2 is loaded but the server's malloc comes from "
        "/lib/x86_64-linux-gnu/libc.so.6; that library does not replace malloc, so the run "
        "would measure libc.so.6"
    )
    glibc = allocators.resolve("glibc")
    allocators.verify_malloc_owner(glibc, "/lib/x86_64-linux-gnu/libc.so.6")
    with pytest.raises(AllocatorError, match="expected glibc's malloc"):
        allocators.verify_malloc_owner(glibc, "/x/libjemalloc.so.2")


def test_doctor_rows_say_where_each_library_is() -> None:
    custom = {
        "nope": Allocator("nope", "libnope.so.9", {"NOPE": "1"}, "libnope9"),
        "own": Allocator("own", "/opt/own/libown.so", {}, None),
    }
    found = {"libjemalloc.so.2": "/usr/lib/libjemalloc.so.2"}
    with (
        patch("sandbox.allocators.registry.find_library", side_effect=found.get),
        patch("sandbox.allocators.registry.package_version", side_effect=lambda p: p and f"{p}-v"),
    ):
        rows = {r.allocator.name: r for r in allocators.doctor_rows(custom)}

    assert list(rows) == [*allocators.BUILTIN, "nope", "own"]
    assert rows["glibc-arena2"].cells() == (
        "glibc-arena2", "found", "(built into libc)", "libc6 libc6-v", "MALLOC_ARENA_MAX=2",
    )  # fmt: skip
    assert rows["jemalloc"].cells()[:3] == ("jemalloc", "found", "/usr/lib/libjemalloc.so.2")
    assert rows["nope"].cells() == (
        "nope",
        "MISSING",
        "libnope.so.9",
        "libnope9 libnope9-v",
        "NOPE=1",
    )
    assert rows["own"].cells() == ("own", "MISSING", "/opt/own/libown.so", "- -", "")
    assert allocators.missing_packages(list(rows.values())) == [
        "libmimalloc2.0", "libnope9", "libtcmalloc-minimal4",
    ]  # fmt: skip
