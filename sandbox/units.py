"""Sizes: the binary units, and the two ways this project writes a size in MiB for people."""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


def mib(value: float | None, decimals: int = 1) -> str:
    """`value` bytes as `12.3 MiB`; `-` when there is no value."""
    return "-" if value is None else f"{value / MIB:.{decimals}f} MiB"


def mib_figure(value: float, decimals: int = 0) -> str:
    """`value` bytes in MiB as a bare number of `decimals` places, never `-0` (a small
    negative change rounds to 0)."""
    text = f"{value / MIB:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text
