"""HTTP calls to a server on this machine: one opener for all of them, with no proxies and no
redirects (a proxy would make a healthy local server look hung; a redirect could leave the machine).
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer; following it could leave this machine."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# An empty ProxyHandler overrides http_proxy / https_proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects)


def answers(url: str, timeout_s: float = 1.0) -> bool:
    """True when `url` gives any HTTP answer below 500 (a 404, or a redirect, still means the
    server is up). Redirects are not followed."""
    try:
        with OPENER.open(url, timeout=timeout_s):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (urllib.error.URLError, OSError, ValueError):
        return False


def get_json(
    url: str, timeout_s: float, method: str = "GET", headers: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """GET (or POST) `url` as JSON, with `headers`; None when the server does not answer (busy,
    gone, no such route, a refusal, a redirect, or a connection broken mid-answer)."""
    try:
        request = urllib.request.Request(url, method=method, headers=dict(headers or {}))
        with OPENER.open(request, timeout=timeout_s) as r:
            data = json.load(r)
    except (OSError, ValueError, http.client.HTTPException):
        return None
    return data if isinstance(data, dict) else None
