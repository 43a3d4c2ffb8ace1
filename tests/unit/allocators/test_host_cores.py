"""--host-cores N: the core-scaled allocator defaults of an N-core host, in the server's
environment and in the group's label."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.allocators import host_cores
from sandbox.allocators.registry import resolve
from sandbox.analysis.groups import label
from sandbox.config import settings as config

REPO = Path(__file__).resolve().parents[3]


def test_glibc_gets_eight_arenas_per_core() -> None:
    assert host_cores.environ(None, {}, 8) == {"MALLOC_ARENA_MAX": "64"}
    assert host_cores.environ(None, {}, 1) == {"MALLOC_ARENA_MAX": "8"}


def test_jemalloc_gets_four_arenas_per_cpu_added_to_its_conf() -> None:
    lib = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
    assert host_cores.environ(lib, {}, 8) == {"MALLOC_CONF": "narenas:32"}
    assert host_cores.environ(lib, {"MALLOC_CONF": "background_thread:true"}, 2) == {
        "MALLOC_CONF": "background_thread:true,narenas:8"
    }


@pytest.mark.parametrize(
    ("library", "env"),
    [
        (None, {"MALLOC_ARENA_MAX": "2"}),
        (None, {"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}),
        ("libjemalloc.so.2", {"MALLOC_CONF": "narenas:2"}),
        ("libmimalloc.so.2", {}),
        ("libtcmalloc_minimal.so.4", {}),
    ],
)
def test_what_an_arm_sets_itself_is_kept_and_others_get_nothing(
    library: str | None, env: dict[str, str]
) -> None:
    assert host_cores.environ(library, env, 8) == {}


def test_no_cores_no_change() -> None:
    assert host_cores.environ(None, {}, None) == {}


def test_the_setting_reaches_the_spec_and_the_group_label() -> None:
    bench = config.load_benchmark(REPO / "benchmark.yml")
    overrides = config.validate_overrides("option", {"host_cores": 8})

    spec = config.build_spec(bench, overrides)

    assert spec.server.host_cores == 8
    assert spec.parameters == {"host_cores": 8}
    assert label(spec.allocator, spec.parameters) == "glibc host_cores=8"


def test_a_bad_core_count_is_refused_with_its_flag() -> None:
    with pytest.raises(Exception, match="--host-cores has value 0; expected a whole number >= 1"):
        config.validate_overrides("option", {"host_cores": 0})


def test_describe_names_the_variable() -> None:
    assert host_cores.describe(None, 8) == "MALLOC_ARENA_MAX=64 (glibc: 8 x 8 cores)"
    assert host_cores.describe(resolve("jemalloc").path, 8) == "narenas:32 (jemalloc: 4 x 8 CPUs)"
