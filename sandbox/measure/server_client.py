"""The harness's calls to the server's loopback-only debug routes (the stair-stepper has them; a
user's app may not): ask the allocator to trim, and pympler's top object types.

Every call goes through `sandbox.system.loopback` (one opener: no proxies, no redirects); a POST
carries the X-Sandbox-Debug header the server requires.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sandbox.config.server_settings import DEBUG_HEADER
from sandbox.system.loopback import get_json

Fetch = Callable[[str, float, str, Mapping[str, str]], dict[str, Any] | None]
"""(url, timeout_s, method, headers) -> the JSON object answered, or None."""

DEBUG_HEADERS = {DEBUG_HEADER: "1"}
"""What every POST to /debug/* must carry (the server refuses it otherwise)."""


def _nothing() -> None:
    return None


class ServerClient:
    """Debug-route calls to the server at `base_url`; any answer counts as a sign of life."""

    def __init__(
        self, base_url: str, *, on_answer: Callable[[], None] = _nothing, fetch: Fetch = get_json
    ) -> None:
        self.base_url = base_url
        self.on_answer = on_answer
        """Called after each answer: a long one (pympler) is not a hang, even if /stats waited."""
        self.fetch = fetch

    def call(self, method: str, path: str, timeout_s: float = 30.0) -> dict[str, Any] | None:
        """One route's JSON answer; None if the server has no such route or did not answer."""
        headers = DEBUG_HEADERS if method == "POST" else {}
        answer = self.fetch(f"{self.base_url}{path}", timeout_s, method, headers)
        if answer is not None:
            self.on_answer()
        return answer

    def trim(self) -> dict[str, Any]:
        """POST /debug/trim: the allocator returns free memory; {} when the route is missing."""
        return self.call("POST", "/debug/trim") or {}

    def objects(self, limit: int = 15) -> dict[str, Any] | None:
        """GET /debug/objects: the top `limit` object types by size (it walks every object, so
        it may take long); None when it failed."""
        return self.call("GET", f"/debug/objects?limit={limit}", timeout_s=120.0)
