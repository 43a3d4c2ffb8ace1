"""How large this CPU's saved register state (the XSAVE area) is, as a debugger must handle it.

A debugger that calls a function inside a process saves the process's registers first and
writes them back after. The vector registers travel through ptrace as one XSAVE area whose size
depends on what the CPU and kernel enable: 2,696 bytes with AVX-512 and PKRU, 11,008 with Intel
AMX's tile registers as well. gdb before 14 sizes that area at a fixed 2,696 bytes; on an AMX
host the kernel refuses its write-back (EFAULT, "Couldn't write extended state status: Bad
address"), gdb stops before it restores `orig_rax`, and the interrupted system call's restart
code leaks into the target, which then fails or dies (measured: `OSError: [Errno 514]` out of
`time.sleep`).

The features come from the kernel (arch_prctl ARCH_GET_XCOMP_SUPP: what it will save for a
process), the size from the architectural offsets of the standard (non-compacted) layout, the
one ptrace uses: CPUID leaf 0xD gives the same offsets on every CPU that has the feature.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from dataclasses import dataclass
from pathlib import Path

SYS_ARCH_PRCTL = 158  # x86-64
ARCH_GET_XCOMP_SUPP = 0x1021
LEGACY_AND_HEADER_BYTES = 512 + 64
"""The x87/SSE legacy area and the XSAVE header, present in every layout."""

# feature bit -> (offset, size) in the standard layout (Intel SDM vol. 1, 13.4 / CPUID 0xD)
STANDARD_LAYOUT: dict[int, tuple[int, int]] = {
    2: (576, 256),  # AVX: upper halves of YMM0-15
    3: (960, 64),  # MPX bound registers
    4: (1024, 64),  # MPX bound config
    5: (1088, 64),  # AVX-512 opmask k0-7
    6: (1152, 512),  # AVX-512 upper halves of ZMM0-15
    7: (1664, 1024),  # AVX-512 ZMM16-31
    9: (2688, 8),  # PKRU
    17: (2752, 64),  # AMX tile configuration
    18: (2816, 8192),  # AMX tile data
}
AMX_BITS = (17, 18)
CPU_FLAGS_FOR_BITS = {
    2: "avx",
    5: "avx512f",
    6: "avx512f",
    7: "avx512f",
    9: "pku",
    17: "amx_tile",
    18: "amx_tile",
}
"""Fallback where arch_prctl cannot answer: the /proc/cpuinfo flag that implies the feature."""


@dataclass(frozen=True)
class RegisterState:
    """This host's XSAVE area as ptrace hands it to a debugger."""

    features: int
    """The enabled XSAVE feature bits."""
    size_bytes: int
    source: str
    """Where the features came from: arch_prctl, or /proc/cpuinfo's flags."""

    @property
    def amx(self) -> bool:
        return any(self.features >> bit & 1 for bit in AMX_BITS)

    def describe(self) -> str:
        extra = " with AMX tile registers" if self.amx else ""
        return f"{self.size_bytes:,}-byte register state{extra}"


def size_of(features: int) -> int:
    """The standard layout's size for these feature bits."""
    end = LEGACY_AND_HEADER_BYTES
    for bit, (offset, size) in STANDARD_LAYOUT.items():
        if features >> bit & 1:
            end = max(end, offset + size)
    return end


def cpu_flags(cpuinfo: str | None = None) -> tuple[str, ...]:
    """The first processor's flags in /proc/cpuinfo (empty where there are none)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return ()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return tuple(value.split())
    return ()


def features_from_flags(flags: tuple[str, ...]) -> int:
    features = 0b11  # x87 and SSE
    for bit, flag in CPU_FLAGS_FOR_BITS.items():
        if flag in flags:
            features |= 1 << bit
    return features


def _kernel_features() -> int | None:
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        value = ctypes.c_uint64(0)
        if libc.syscall(SYS_ARCH_PRCTL, ARCH_GET_XCOMP_SUPP, ctypes.byref(value)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return int(value.value)


def host() -> RegisterState | None:
    """This host's register state; None off x86-64 (no XSAVE: nothing to size)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    features = _kernel_features()
    if features is not None:
        return RegisterState(features, size_of(features), "arch_prctl(ARCH_GET_XCOMP_SUPP)")
    features = features_from_flags(cpu_flags())
    return RegisterState(features, size_of(features), "/proc/cpuinfo flags")
