"""Which symbol files gdb reads before the attach, and where the target loaded them."""

from __future__ import annotations

import os
import subprocess
import sys

from sandbox.inspector import symbols
from sandbox.inspector.symbols import SymbolFile

JE = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
MAPS = f"""\
55d0c3a00000-55d0c3a01000 r--p 00000000 fe:00 26723      /usr/bin/python3.11
55d0c3a01000-55d0c3a02000 r-xp 00001000 fe:00 26723      /usr/bin/python3.11
7f0000000000-7f0000021000 rw-p 00000000 00:00 0
7f1000000000-7f1000010000 r--p 00000000 fe:00 11         {JE}
7f1000010000-7f1000090000 r-xp 00010000 fe:00 11         {JE}
7f2000000000-7f2000028000 r--p 00000000 fe:00 12         {LIBC}
7f2000028000-7f2000100000 r-xp 00028000 fe:00 12         {LIBC}
7f3000000000-7f3000100000 r--p 00000000 fe:00 13         /opt/py/lib/libpython3.11.so.1.0
7f4000000000-7f4000001000 r--p 00000000 fe:00 14         /usr/lib/libssl.so.3
7f5000000000-7f5000001000 r--p 00000000 fe:00 15         /usr/lib/libold.so (deleted)
7f6000000000-7f6000001000 r--p 00000000 fe:00 16         /opt/hoard/libhoard.so
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0          [stack]
"""


def test_load_addresses_take_each_files_first_mapping() -> None:
    assert symbols.load_addresses(MAPS) == {
        "/usr/bin/python3.11": 0x55D0C3A00000,
        JE: 0x7F1000000000,
        LIBC: 0x7F2000000000,
        "/opt/py/lib/libpython3.11.so.1.0": 0x7F3000000000,
        "/usr/lib/libssl.so.3": 0x7F4000000000,
        "/opt/hoard/libhoard.so": 0x7F6000000000,
    }


def test_choose_the_files_whose_functions_are_called() -> None:
    starts = symbols.load_addresses(MAPS)
    assert symbols.choose(starts, None) == [JE, LIBC, "/opt/py/lib/libpython3.11.so.1.0"]
    # What LD_PRELOAD names comes first, as the dynamic linker searches it first.
    assert symbols.choose(starts, f"/opt/hoard/libhoard.so {JE}") == [
        "/opt/hoard/libhoard.so",
        JE,
        LIBC,
        "/opt/py/lib/libpython3.11.so.1.0",
    ]


def test_first_load_vaddr_of_a_shared_library_and_of_junk() -> None:
    libc = next(p for p in (LIBC, "/lib/x86_64-linux-gnu/libc.so.6") if os.path.exists(p))
    assert symbols.first_load_vaddr(libc) == 0
    assert symbols.first_load_vaddr("/nonexistent") == 0
    assert symbols.first_load_vaddr(__file__) == 0


def test_symbol_files_of_a_child() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        files = symbols.symbol_files(child.pid, None)
        with open(f"/proc/{child.pid}/maps") as f:
            maps = f.read()
    finally:
        child.communicate(b"")
    names = [os.path.basename(f.path) for f in files]
    assert "libc.so.6" in names
    libc = next(f for f in files if os.path.basename(f.path) == "libc.so.6")
    assert libc.path.startswith(f"/proc/{child.pid}/root/")
    start = f"{libc.bias:x}-"
    assert any(line.startswith(start) and "libc.so.6" in line for line in maps.splitlines())
    assert isinstance(libc, SymbolFile)
