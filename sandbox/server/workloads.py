"""What POST /widgets does with a body: allocate, needlessly, like the Rust stair-stepper.

Parse, deep-copy the whole document, re-serialise the copy's payload. The result keeps every
intermediate alive so the caller can hold them across its simulated downstream latency.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any


class BadRequest(ValueError):
    """The client's body is unusable; the message is safe to send back."""


@dataclass(frozen=True)
class Widget:
    """Everything one request allocated; keep it referenced to keep the memory in use."""

    body: bytes
    document: dict[str, Any]
    clone: dict[str, Any]
    serialised: bytes

    @property
    def size(self) -> int:
        """Bytes of the re-serialised payload."""
        return len(self.serialised)


def parse(body: bytes) -> dict[str, Any]:
    """The JSON object in `body`, which must hold an object under `payload`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not valid UTF-8 (byte {exc.start})") from None
    try:
        document = json.loads(text)
    except RecursionError:
        raise BadRequest("body is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    except ValueError as exc:  # e.g. an integer over sys.get_int_max_str_digits()
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest(f"body must be a JSON object, not {type(document).__name__}")
    if not isinstance(document.get("payload"), dict):
        raise BadRequest('body must have an object under "payload"')
    return document


def process(body: bytes) -> Widget:
    """Parse `body`, clone the document, serialise the clone's payload; keep it all."""
    document = parse(body)
    try:
        clone = copy.deepcopy(document)
        serialised = json.dumps(clone["payload"]).encode()
    except RecursionError:
        raise BadRequest("body is nested too deeply") from None
    return Widget(body, document, clone, serialised)
