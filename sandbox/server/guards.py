"""Who may call /debug/*: three checks, each against a different way in.

- The client's address must be loopback: nobody on the network (even when the server listens
  beyond loopback with --expose).
- The Host header must name this machine (127.0.0.1, localhost or [::1], any port): a page
  whose domain an attacker re-points at 127.0.0.1 (DNS rebinding) sends its own name, so it
  cannot read /debug/memory through the visitor's browser.
- A POST must carry the DEBUG_HEADER: a web page cannot send a custom header cross-site without
  a CORS preflight (OPTIONS), which this server never approves, so a page cannot make it hold
  or trim memory with a "simple" form POST either.
"""

from __future__ import annotations

import ipaddress

from starlette.requests import Request

from sandbox.config.server_settings import DEBUG_HEADER, is_loopback_name


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; False for names and None."""
    if host is None:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False  # e.g. Starlette TestClient's "testclient": not an address, so refused
    return is_loopback_name(host)


def host_header_is_local(value: str | None) -> bool:
    """True when a Host header names this machine: localhost or a loopback address, IPv6 in
    brackets, with or without a port."""
    if not value:
        return False
    name, port = value.strip(), ""
    if name.startswith("["):
        inside, bracket, port = name[1:].partition("]")
        if not bracket or ":" not in inside:
            return False
        name = inside
        if port and not port.startswith(":"):
            return False
        port = port[1:]
    elif ":" in name:
        name, _, port = name.partition(":")
    if port and not (port.isascii() and port.isdigit()):
        return False
    return bool(name) and is_loopback_name(name)


def refusal(request: Request) -> str | None:
    """Why `request` may not use a debug route, or None when it may."""
    client = request.client.host if request.client else None
    if not is_loopback(client):
        return (
            f"/debug answers loopback clients only, not {client or 'unknown'}; "
            "send the request from the server's own host (e.g. to 127.0.0.1)"
        )
    host = request.headers.get("host")
    if not host_header_is_local(host):
        shown = "no Host header" if host is None else f"Host {host!r}"
        return (
            f"/debug answers requests addressed to this machine only (Host 127.0.0.1, "
            f"localhost or [::1]), not {shown}; call it as http://127.0.0.1:PORT/debug/..."
        )
    if request.method == "POST" and request.headers.get(DEBUG_HEADER) != "1":
        return (
            f"POST /debug/* needs the header '{DEBUG_HEADER}: 1' (a web page cannot send it "
            f"cross-site); e.g. curl -X POST -H '{DEBUG_HEADER}: 1' "
            f"http://127.0.0.1:PORT{request.url.path}"
        )
    return None
