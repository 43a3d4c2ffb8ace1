"""The XSAVE area's size as ptrace hands it to gdb, from feature bits and from /proc/cpuinfo."""

from __future__ import annotations

import pytest

from sandbox.inspector import xsave
from sandbox.inspector.xsave import RegisterState, cpu_flags, features_from_flags, size_of

X87_SSE = 0b11
AVX512_PKRU = X87_SSE | 1 << 2 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 9
AMX = AVX512_PKRU | 1 << 17 | 1 << 18

CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512bw pku ospke amx_bf16 amx_tile amx_int8
bugs\t\t: spectre_v1

processor\t: 1
flags\t\t: fpu sse sse2
"""


@pytest.mark.parametrize(
    ("features", "size"),
    [
        (X87_SSE, 576),
        (X87_SSE | 1 << 2, 832),  # AVX: 576 + 256
        (AVX512_PKRU, 2696),
        (AMX, 11008),
        (AVX512_PKRU | 1 << 17, 2816),  # the tile configuration alone
        (AVX512_PKRU | 1 << 18, 11008),
    ],
)
def test_size_of(features: int, size: int) -> None:
    assert size_of(features) == size


def test_unknown_bits_add_nothing() -> None:
    assert size_of(X87_SSE | 1 << 8 | 1 << 30) == 576  # PT (supervisor) and a future bit


def test_cpu_flags_are_the_first_processors() -> None:
    flags = cpu_flags(CPUINFO)
    assert flags[:3] == ("fpu", "vme", "sse")
    assert "amx_tile" in flags and len(flags) == 13
    assert cpu_flags("processor\t: 0\nFeatures\t: fp asimd\n") == ()  # arm64 names them so


def test_features_from_flags() -> None:
    assert features_from_flags(cpu_flags(CPUINFO)) == AMX
    assert size_of(features_from_flags(cpu_flags(CPUINFO))) == 11008
    assert features_from_flags(("fpu", "sse", "avx", "avx512f", "pku")) == AVX512_PKRU
    assert features_from_flags(("fpu", "sse", "sse2")) == X87_SSE
    assert features_from_flags(()) == X87_SSE


def test_register_state_amx_and_describe() -> None:
    amx = RegisterState(AMX, 11008, "test")
    assert amx.amx
    assert amx.describe() == "11,008-byte register state with AMX tile registers"
    plain = RegisterState(AVX512_PKRU, 2696, "test")
    assert not plain.amx
    assert plain.describe() == "2,696-byte register state"
    assert RegisterState(X87_SSE | 1 << 17, 2816, "test").amx  # either AMX bit counts


def test_host_is_consistent() -> None:
    state = xsave.host()
    if state is None:
        pytest.skip("not an x86-64 host: no XSAVE area")
    assert state.features & X87_SSE == X87_SSE
    assert state.size_bytes == size_of(state.features) >= 576
    assert state.source in ("arch_prctl(ARCH_GET_XCOMP_SUPP)", "/proc/cpuinfo flags")
