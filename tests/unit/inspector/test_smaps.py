"""The smaps parser and the kinds of mapping, on fixture text and on this process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.inspector import smaps
from sandbox.inspector.smaps import Mapping, Region
from sandbox.units import KIB

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture
def mappings() -> list[Mapping]:
    return smaps.parse((DATA / "smaps_small.txt").read_text())


def test_parse_reads_every_mapping_and_its_fields(mappings: list[Mapping]) -> None:
    assert len(mappings) == 16
    first, heap, named, memfd = mappings[0], mappings[2], mappings[12], mappings[13]
    assert (first.start, first.end, first.perms, first.inode) == (
        0x55D0C3A00000,
        0x55D0C3A01000,
        "r--p",
        26723,
    )
    assert first.path == "/usr/bin/python3.11"
    assert (heap.path, heap.size_bytes, heap.rss_bytes) == ("[heap]", 132 * KIB, 132 * KIB)
    assert named.path == "[anon:glibc: malloc]" and named.is_anonymous
    assert memfd.path == "/memfd:cache (deleted)" and memfd.is_file
    assert mappings[8].anon_huge_bytes == 4096 * KIB
    assert mappings[10].swap_bytes == 8 * KIB


def test_kinds_follow_the_layout_rules(mappings: list[Mapping]) -> None:
    assert smaps.kinds(mappings) == [
        "file-backed",
        "file-backed",
        "[heap]",
        "glibc arena heaps",  # rw part at a 64 MiB boundary...
        "glibc arena heaps",  # ...and its PROT_NONE rest, up to the next boundary
        "glibc arena heaps",  # a heap grown to the whole 64 MiB
        "reserved (no access)",  # a thread stack's guard page
        "thread stacks",
        "anonymous >= 64 MiB",  # on a 64 MiB boundary but 68 MiB long: not a glibc heap
        "anonymous 1-8 MiB",  # on a boundary, 1 MiB, no PROT_NONE rest: not a heap either
        "anonymous < 1 MiB",
        "reserved (no access)",
        "[anon:glibc: malloc]",
        "file-backed",
        "[stack]",
        "kernel ([vdso], [vvar], ...)",
    ]


def test_summary_totals_and_regions(mappings: list[Mapping]) -> None:
    summary = smaps.summarise(mappings)
    assert summary.rss_bytes == 138088 * KIB
    assert summary.anonymous_bytes == 136032 * KIB
    assert summary.file_bytes == 2056 * KIB
    assert summary.swap_bytes == 8 * KIB
    assert summary.anon_huge_bytes == 4096 * KIB
    assert summary.regions == (
        Region("[heap]", 1, 132 * KIB, 132 * KIB),
        Region("glibc arena heaps", 3, 128 * 1024 * KIB, 65636 * KIB),
        Region("[stack]", 1, 132 * KIB, 20 * KIB),
        Region("thread stacks", 1, 8192 * KIB, 16 * KIB),
        Region("anonymous < 1 MiB", 1, 64 * KIB, 64 * KIB),
        Region("anonymous 1-8 MiB", 1, 1024 * KIB, 512 * KIB),
        Region("anonymous >= 64 MiB", 1, 69632 * KIB, 69632 * KIB),
        Region("reserved (no access)", 2, 8196 * KIB, 0),
        Region("[anon:glibc: malloc]", 1, 16 * KIB, 16 * KIB),
        Region("file-backed", 3, 2056 * KIB, 2056 * KIB),
        Region("kernel ([vdso], [vvar], ...)", 1, 8 * KIB, 4 * KIB),
    )
    assert summary.region("thread stacks") == Region("thread stacks", 1, 8192 * KIB, 16 * KIB)
    assert summary.region("anonymous 8-64 MiB") is None


def test_to_dict_keys(mappings: list[Mapping]) -> None:
    data = smaps.summarise(mappings).to_dict()
    assert list(data) == [
        "rss_bytes",
        "anonymous_bytes",
        "file_bytes",
        "swap_bytes",
        "anon_huge_bytes",
        "regions",
    ]
    assert data["regions"][0] == {
        "name": "[heap]",
        "mappings": 1,
        "size_bytes": 132 * KIB,
        "rss_bytes": 132 * KIB,
    }


def test_a_named_glibc_arena_counts_as_an_arena_heap() -> None:
    text = (
        "7f0000000000-7f0000021000 rw-p 00000000 00:00 0   [anon:glibc: malloc arena]\n"
        "Rss:                 100 kB\n"
        "7f0000021000-7f0004000000 ---p 00000000 00:00 0   [anon:glibc: malloc arena]\n"
        "Rss:                   0 kB\n"
    )
    assert smaps.kinds(smaps.parse(text)) == ["glibc arena heaps", "glibc arena heaps"]


def test_empty_text_has_no_mappings() -> None:
    assert smaps.parse("") == []
    summary = smaps.summarise([])
    assert (summary.rss_bytes, summary.regions) == (0, ())


def test_read_self_adds_up() -> None:
    summary = smaps.read(os.getpid())
    assert summary.rss_bytes == sum(r.rss_bytes for r in summary.regions)
    assert summary.anonymous_bytes + summary.file_bytes == summary.rss_bytes
    assert summary.region("file-backed") is not None


def test_read_threads_of_a_child_shows_their_stacks() -> None:
    code = (
        "import threading, sys\n"
        "e = threading.Event()\n"
        "ts = [threading.Thread(target=e.wait) for _ in range(3)]\n"
        "[t.start() for t in ts]\n"
        "print('ready', flush=True); sys.stdin.read(); e.set()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        stacks = smaps.read(child.pid).region("thread stacks")
        assert stacks is not None and stacks.mappings >= 3
    finally:
        child.communicate(b"")


def test_read_missing_process() -> None:
    with pytest.raises(FileNotFoundError):
        smaps.read(2**22 + 1)  # above the kernel's pid_max limit
