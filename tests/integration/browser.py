"""Debian's chromium, headless and cut off from the network, driven over the DevTools protocol.

The browser runs with `--remote-debugging-pipe`: it reads commands on fd 3 and writes answers
and events on fd 4, each a JSON message ended by a NUL byte. Every request the page makes
(Network.requestWillBeSent), every console message and page error is recorded. Networking is
off twice over: every host name resolves to nothing, and everything else goes to a proxy on
127.0.0.1:9, where nothing listens.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import io
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = ("chromium", "chromium-browser")
NO_NETWORK = (
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)
TIMEOUT_S = 30.0


def find_chromium() -> str | None:
    return next((found for name in CHROMIUM if (found := shutil.which(name))), None)


@dataclass
class Visit:
    """What one page did in the browser."""

    url: str
    text: str = ""
    """document.body.innerText."""
    values: dict[str, Any] = field(default_factory=dict)
    """The value of each JavaScript expression asked for, by name."""
    screenshot_png: bytes = b""
    requests: list[str] = field(default_factory=list)
    """Every URL the page asked for, the page itself included."""
    failed_requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Console errors and warnings, uncaught exceptions, log entries of level error."""


class Browser:
    """One headless chromium; `visit` opens a page in a fresh tab."""

    def __init__(self, executable: str, profile: Path, width: int = 1280, height: int = 900):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_pipes() -> None:
            """In the child, before exec: the pipes on fds 3 and 4, as chromium wants them
            (moved out of the way first, in case either already is 3 or 4)."""
            read_end = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)  # dup2 makes them inheritable
            os.dup2(write_end, 4)

        self._log = open(profile.with_suffix(".log"), "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                *NO_NETWORK,
                "about:blank",
            ],
            preexec_fn=wire_pipes,
            close_fds=False,  # our other fds are not inheritable (PEP 446); 3 and 4 are
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    # --- the protocol ---

    def _send(self, method: str, params: dict[str, Any] | None, session: str | None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select(
                [self._from_browser], [], [], max(0.0, deadline - time.monotonic())
            )
            if not ready:
                raise TimeoutError("chromium sent nothing in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed its DevTools pipe")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Send a command and wait for its answer; events met on the way are kept."""
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            message = self._receive(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self._events.append(message)

    def _drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with contextlib.suppress(TimeoutError):
            while True:
                self._events.append(self._receive(deadline))

    # --- a page ---

    def visit(self, path: Path, evaluate: Mapping[str, str] | None = None) -> Visit:
        """Open `path`, wait for its load event and a moment more, and record what it did
        (the screenshot is of the whole page)."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=session)
        self._events.clear()
        url = path.resolve().as_uri()
        self.call("Page.navigate", {"url": url}, session)
        deadline = time.monotonic() + TIMEOUT_S
        while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
            self._events.append(self._receive(deadline))
        self._drain(1.0)  # late console messages and requests
        visit = Visit(url=url)
        visit.text = self._evaluate(session, "document.body.innerText")
        for name, expression in (evaluate or {}).items():
            visit.values[name] = self._evaluate(session, expression)
        size = self.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.call(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
            session,
        )
        visit.screenshot_png = base64.b64decode(shot["data"])
        self._record(visit, [e for e in self._events if e.get("sessionId") == session])
        self.call("Target.closeTarget", {"targetId": target})
        return visit

    def _evaluate(self, session: str, expression: str) -> Any:
        answer = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session
        )
        return answer["result"].get("value")

    @staticmethod
    def _record(visit: Visit, events: list[dict[str, Any]]) -> None:
        for event in events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent":
                visit.requests.append(params["request"]["url"])
            elif method == "Network.loadingFailed":
                visit.failed_requests.append(params.get("errorText", "?"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in (
                "error",
                "warning",
                "assert",
            ):
                values = [str(a.get("value", a.get("description", ""))) for a in params["args"]]
                visit.errors.append(f"console.{params['type']}: {' '.join(values)}")
            elif method == "Runtime.exceptionThrown":
                visit.errors.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") in (
                "error",
                "warning",
            ):
                entry = params["entry"]
                visit.errors.append(f"{entry.get('source')}: {entry.get('text')}")

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError, EOFError):
            self._send("Browser.close", None, None)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=10)
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._log.close()


@contextlib.contextmanager
def headless_chromium(profile: Path) -> Iterator[Browser]:
    """A browser for the block; stopped (and killed if it must be) on every exit."""
    executable = find_chromium()
    if executable is None:
        raise FileNotFoundError("chromium")
    browser = Browser(executable, profile)
    try:
        yield browser
    finally:
        browser.close()


# --- checks shared by the tests that open a report ---
# LOOK: the JavaScript expressions those tests evaluate in the page.

LOOK: dict[str, str] = {
    "figures": "document.querySelectorAll('svg.figure').length",
    "figure_heights": "[...document.querySelectorAll('svg.figure')]"
    ".map(s => Math.round(s.getBoundingClientRect().height))",
    "drawn_paths": "document.querySelectorAll('svg.figure path').length",
    "table_rows": "document.querySelectorAll('#comparison tbody tr').length",
    "outside": "document.querySelectorAll('script, img, link, iframe, object, embed').length",
}


def colours(png: bytes) -> tuple[int, float]:
    """Distinct colours in the screenshot, and the share of pixels that are not white."""
    import matplotlib.image as mpimg
    import numpy as np

    pixels = mpimg.imread(io.BytesIO(png), format="png")[..., :3]
    flat = (pixels.reshape(-1, 3) * 255).round().astype(np.uint8)
    distinct = len(np.unique(flat, axis=0))
    not_white = float(np.mean(np.any(flat < 250, axis=1)))
    return distinct, not_white


def assert_self_contained(visit: Visit) -> None:
    """No console error, no request but the page itself, no element that could fetch one."""
    assert visit.errors == [], visit.errors
    assert visit.requests == [visit.url], visit.requests
    assert visit.failed_requests == [], visit.failed_requests
    assert visit.values["outside"] == 0, visit.values
