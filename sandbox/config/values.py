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
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit


class Invalid(ValueError):
    """A value failed its check; the message says what was expected."""


Check = Callable[[Any], Any]


def shown(value: Any, limit: int = 60) -> str:
    """`repr(value)` for an error message, cut to about `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Upper bounds far past any real setting, so that no value overflows a float or a C type later.
MAX_SETTING_WHOLE = 2**31 - 1
MAX_SETTING_NUMBER = 1e9


def whole(minimum: int) -> Check:
    """An int (not a bool) from minimum to MAX_SETTING_WHOLE."""

    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise Invalid(f"a whole number >= {minimum}")
        if v > MAX_SETTING_WHOLE:
            raise Invalid(f"a whole number from {minimum} to {MAX_SETTING_WHOLE}")
        return v

    return check


def number(minimum: float, strict: bool = False) -> Check:
    """A finite int or float >= minimum (> minimum when strict) and <= MAX_SETTING_NUMBER, as a
    float."""
    expected = f"a number {'>' if strict else '>='} {minimum:g}"

    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise Invalid(expected)
        if isinstance(v, float) and not math.isfinite(v):
            raise Invalid(expected)
        if v <= minimum if strict else v < minimum:  # exact even for an int too big for a float
            raise Invalid(expected)
        if v > MAX_SETTING_NUMBER:
            raise Invalid(f"{expected} and <= {MAX_SETTING_NUMBER:g}")
        return float(v)

    return check


def optional_whole(minimum: int) -> Check:
    """None, or a whole number >= minimum."""
    check = whole(minimum)
    return lambda v: None if v is None else check(v)


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


_ALLOCATOR_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}", re.ASCII)


def allocator_name(v: Any) -> str:
    """An allocator's name, which becomes part of file names (run ids, plots): letters, digits,
    `.`, `_` and `-`, not starting with a dot, at most 64 characters."""
    if not isinstance(v, str) or not _ALLOCATOR_NAME.fullmatch(v):
        raise Invalid(
            "a name of letters, digits, '.', '_' and '-' (not starting with '.'), "
            "at most 64 characters, e.g. jemalloc-narenas2"
        )
    return v


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


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([KMGT])(I)?)?B?", re.IGNORECASE | re.ASCII)
_PREFIXES = "KMGT"
MAX_SIZE_BYTES = 1024**6
"""1 EiB: far past any machine's memory, and well inside a signed 64-bit integer."""
_SIZE_EXAMPLES = "such as 2GiB, 800MiB or 1500000000"


def parse_size(v: Any) -> int:
    """`2GiB`, `1.5G`, `800MiB`, `500000000` -> bytes: at least 1 and at most MAX_SIZE_BYTES.

    K, M, G and T are powers of 1000, Ki, Mi, Gi and Ti powers of 1024; the B is optional. A
    size that rounds down to 0 bytes (`0.1B`) is refused like 0: a size here is a limit, and
    a limit of 0 would not mean "no limit" (leave the setting out for that).
    """
    if isinstance(v, bool):
        raise Invalid(f"a size {_SIZE_EXAMPLES}")
    if isinstance(v, int):
        count = v
    else:
        m = _SIZE.fullmatch(str(v).strip())
        if not m:
            raise Invalid(f"a size {_SIZE_EXAMPLES}")
        number, prefix, binary = m.groups()
        power = _PREFIXES.index(prefix.upper()) + 1 if prefix else 0
        factor = (1024 if binary else 1000) ** power
        count = int(Fraction(number) * factor)
    if count < 1:
        raise Invalid(f"a size of at least 1 byte, {_SIZE_EXAMPLES} (leave it out for no limit)")
    if count > MAX_SIZE_BYTES:
        raise Invalid(f"a size of at most 1 EiB, {_SIZE_EXAMPLES}")
    return count


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
