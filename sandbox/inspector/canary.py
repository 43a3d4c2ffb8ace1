"""A throwaway process for the preflight: it checks its own work while gdb looks at it.

Run as a script by the target's own interpreter (standard library only, Python 3.7 syntax,
nothing from `sandbox`): `python canary.py KIND`. It prints "ready" once its reference results
are computed, works until its standard input closes, then prints one JSON line (its report) and
exits 0. Kinds:

- sleep  the main thread (where gdb makes its calls) sleeps in time.sleep, one thread blocks
         in read(2) on stdin and one waits in select(2): a debugger that attaches interrupts
         these system calls and must restart them (restore orig_rax). A leaked restart code
         surfaces as an OSError (errno 512-516), a sleep that ends early as a wrong result.
- busy   the main thread loops over floating-point arithmetic, vector copies and compares
         (memcpy/memcmp use the widest vector registers glibc finds), SHA-256, and with numpy,
         its SIMD loops; every result is compared with the one computed before any attach. A
         debugger that does not restore the vector registers makes a result wrong.

Report: {"kind", "iterations", "wrong", "errors": [text, ...], "numpy": bool}.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import select
import sys
import threading
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing into the canary
if TYPE_CHECKING:
    from collections.abc import Callable

SLEEP_S = 0.2
SELECT_S = 0.2
BLOCK_BYTES = 1 << 20
MAX_ERRORS = 20


class Report:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.iterations = 0
        self.wrong = 0
        self.errors: list[str] = []
        self.numpy = False
        self.lock = threading.Lock()

    def error(self, text: str) -> None:
        with self.lock:
            if len(self.errors) < MAX_ERRORS:
                self.errors.append(text)

    def mismatch(self, what: str) -> None:
        with self.lock:
            self.wrong += 1
        self.error("wrong result: " + what)

    def emit(self) -> None:
        data = {
            "kind": self.kind,
            "iterations": self.iterations,
            "wrong": self.wrong,
            "errors": self.errors,
            "numpy": self.numpy,
        }
        sys.stdout.write(json.dumps(data) + "\n")
        sys.stdout.flush()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _sleep_once(report: Report) -> None:
    started = time.monotonic()
    try:
        time.sleep(SLEEP_S)
    except Exception as exc:
        report.error("time.sleep raised " + _describe(exc))
        return
    slept = time.monotonic() - started
    if slept < SLEEP_S * 0.99:
        report.mismatch(f"time.sleep({SLEEP_S}) returned after {slept:.4f} s")
    with report.lock:
        report.iterations += 1


def _reader(report: Report, done: threading.Event) -> None:
    while True:
        try:
            data = os.read(0, 1)
        except Exception as exc:
            report.error("read(stdin) raised " + _describe(exc))
            continue
        if not data:
            break
    done.set()


def _selector(report: Report, done: threading.Event) -> None:
    read_end, write_end = os.pipe()
    try:
        while not done.is_set():
            try:
                ready = select.select([read_end], [], [], SELECT_S)
            except Exception as exc:
                report.error("select raised " + _describe(exc))
                continue
            if ready[0]:
                report.mismatch("select said an empty pipe was readable")
    finally:
        os.close(read_end)
        os.close(write_end)


def sleep(report: Report) -> None:
    done = threading.Event()
    threads = [
        threading.Thread(target=_reader, args=(report, done), daemon=True),
        threading.Thread(target=_selector, args=(report, done), daemon=True),
    ]
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    while not done.is_set():
        _sleep_once(report)
    for thread in threads:
        thread.join(5)


def _floats() -> float:
    total = 0.0
    for i in range(1, 2000):
        total += math.sqrt(i) * 1.000000119 / (i + 0.5) - math.sin(i * 0.001)
    return total


def _numpy_work() -> Callable[[], float] | None:
    try:
        import numpy  # type: ignore[import-not-found, unused-ignore]
    except Exception:
        return None
    a = numpy.arange(1, 4097, dtype=numpy.float64) * 0.37
    b = numpy.sqrt(a) + 1.25

    def work() -> float:
        return float(numpy.add.reduce(a * b + numpy.float64(0.5)))

    return work


def busy(report: Report) -> None:
    block = bytes((i * 131 + 7) % 251 for i in range(BLOCK_BYTES))
    floats = _floats()
    digest = hashlib.sha256(block).digest()
    numpy_work = _numpy_work()
    numpy_value = numpy_work() if numpy_work else None
    report.numpy = numpy_work is not None
    done = threading.Event()

    def wait_for_eof() -> None:
        try:
            while os.read(0, 1):
                pass
        except Exception as exc:
            report.error("read(stdin) raised " + _describe(exc))
        done.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    print("ready", flush=True)
    while not done.is_set():
        try:
            if _floats() != floats:
                report.mismatch("floating-point sum")
            copy = bytearray(block)
            if bytes(copy) != block:
                report.mismatch("a 1 MiB copy differs from its source")
            if hashlib.sha256(copy).digest() != digest:
                report.mismatch("SHA-256 of a 1 MiB block")
            if numpy_work is not None and numpy_work() != numpy_value:
                report.mismatch("numpy multiply-add and sum")
        except Exception as exc:
            report.error("the work raised " + _describe(exc))
        report.iterations += 1


def main() -> int:
    kind = sys.argv[1] if len(sys.argv) > 1 else ""
    if kind not in ("sleep", "busy"):
        sys.stderr.write("usage: canary.py sleep|busy\n")
        return 2
    report = Report(kind)
    (sleep if kind == "sleep" else busy)(report)
    report.emit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
