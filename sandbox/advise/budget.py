"""A race's time budget: `20m`, `90s`, `1h`, `1h30m` or plain seconds, as seconds."""

from __future__ import annotations

import re
from typing import Any

import click

from sandbox.config.values import MAX_SETTING_NUMBER, Invalid

_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0}
EXPECTED = "a duration such as 20m, 90s, 1h or 1h30m"


def parse_budget(v: Any) -> float:
    """Seconds of `v` (`20m` -> 1200.0); Invalid says what was expected."""
    if isinstance(v, bool):
        raise Invalid(EXPECTED)
    if isinstance(v, int | float):
        seconds = float(v)
    else:
        text = str(v).strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        else:
            parts = _PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise Invalid(EXPECTED)
            units = [u for _, u in parts]
            if len(set(units)) != len(units) or units != sorted(units, key="hms".index):
                raise Invalid(f"{EXPECTED} (each unit once, hours first)")
            seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    if not 0 < seconds <= MAX_SETTING_NUMBER:
        raise Invalid(f"{EXPECTED}, more than 0")
    return seconds


def shown(seconds: float) -> str:
    """`20m`, `1h30m`, `45s`: a budget as it is typed."""
    whole = round(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    text = "".join(f"{n}{u}" for n, u in ((h, "h"), (m, "m"), (s, "s")) if n)
    return text or "0s"


class BudgetType(click.ParamType):  # type: ignore[type-arg]
    """--budget's values, as seconds."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_budget(value)
        except Invalid as exc:
            self.fail(f"{value!r} is not {exc}", param, ctx)
