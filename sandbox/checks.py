"""Value checks for settings: each takes a raw value (from YAML or a flag) and returns it clean,
or raises `Invalid` whose message says what was expected (`a whole number >= 1`).

The callers add the file and the key: `benchmark.yml: concurrency has value 'lots'; expected
a whole number >= 1`.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit


class Invalid(ValueError):
    """A value failed its check; the message says what was expected."""


Check = Callable[[Any], Any]


def whole(minimum: int) -> Check:
    """An int (not a bool) >= minimum."""

    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise Invalid(f"a whole number >= {minimum}")
        return v

    return check


def number(minimum: float, strict: bool = False) -> Check:
    """A finite int or float >= minimum (> minimum when strict), as a float."""

    def check(v: Any) -> float:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        if not ok or (v <= minimum if strict else v < minimum):
            raise Invalid(f"a number {'>' if strict else '>='} {minimum:g}")
        return float(v)

    return check


def optional_number(minimum: float) -> Check:
    """None, or a number >= minimum."""
    check = number(minimum)
    return lambda v: None if v is None else check(v)


def one_of(*options: str) -> Check:
    def check(v: Any) -> str:
        if v not in options:
            raise Invalid(f"one of: {', '.join(options)}")
        return str(v)

    return check


def boolean(v: Any) -> bool:
    """true/false, or on/off and yes/no as strings."""
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("on", "off", "true", "false", "yes", "no"):
        return v.lower() in ("on", "true", "yes")
    raise Invalid("true or false (on/off)")


def text(v: Any) -> str:
    """A non-empty string."""
    if not isinstance(v, str) or not v:
        raise Invalid("a non-empty string")
    return v


def optional_text(v: Any) -> str | None:
    return None if v is None else text(v)


_TAG = re.compile(r"^[A-Za-z0-9_.-]+$")


def tag_list(examples: Sequence[str]) -> Check:
    """Locust tags, as a list or a comma-separated string; duplicates dropped, order kept.
    `examples` name some in the error message."""
    expected = f"a list of plan tags such as {', '.join(examples)}"

    def check(v: Any) -> tuple[str, ...]:
        items = v.split(",") if isinstance(v, str) else v
        if not isinstance(items, list | tuple) or not items:
            raise Invalid(expected)
        tags = tuple(dict.fromkeys(str(t).strip() for t in items if str(t).strip()))
        if not tags or not all(_TAG.match(t) for t in tags):
            raise Invalid(expected)
        return tags

    return check


def asgi_app(v: Any) -> str | None:
    """None, or `module:attribute`."""
    if v is None:
        return None
    if not isinstance(v, str) or not re.match(r"^[\w.]+:[\w.]+$", v):
        raise Invalid("an ASGI app as module:attribute, e.g. examples.cache_service.app:app")
    return v


def ready_url(v: Any) -> str | None:
    """None, or an http:// URL on this machine; `{host}` and `{port}` may stand in it."""
    if v is None:
        return None
    url = text(v)
    probe = urlsplit(url.replace("{host}", "127.0.0.1").replace("{port}", "1"))
    if probe.scheme != "http" or not is_loopback(probe.hostname or ""):
        raise Invalid("an http:// URL on this machine, e.g. http://127.0.0.1:{port}/health")
    return url


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}


def parse_size(v: Any) -> int:
    """`2GiB`, `1.5G`, `800MiB`, `500000000` -> bytes."""
    if isinstance(v, int) and not isinstance(v, bool) and v > 0:
        return v
    m = _SIZE.match(str(v))
    if not m or float(m.group(1)) <= 0:
        raise Invalid("a size such as 2GiB, 800MiB or 1500000000")
    unit = (m.group(2) or "").upper()
    base = unit[:1] if unit != "B" else "B"
    factor = _UNITS[base] if "I" not in unit else 1024 ** "BKMGT".index(base)
    return int(float(m.group(1)) * factor)


def optional_size(v: Any) -> int | None:
    return None if v is None else parse_size(v)


def size_or_zero(v: Any) -> int:
    """0 (off), or a size such as 30KiB, as bytes."""
    if isinstance(v, bool):
        raise Invalid("a size such as 30KiB, or 0 (off)")
    if v == 0 or (isinstance(v, str) and v.strip() == "0"):
        return 0
    try:
        return parse_size(v)
    except Invalid:
        raise Invalid("a size such as 30KiB, or 0 (off)") from None


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback IP address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    return is_loopback(urlsplit(url).hostname or "")


def loopback_host(v: Any) -> str:
    """The harness both binds the server and sends load to this address: loopback only."""
    host = text(v)
    if not is_loopback(host):
        raise Invalid("a loopback address such as 127.0.0.1 (the sandbox loads only this machine)")
    return "127.0.0.1" if host == "localhost" else host
