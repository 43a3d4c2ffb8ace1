"""What gdb runs: attach, call the allocator's own functions inside the target, detach.

This file is executed by gdb's embedded Python (the distribution's, not the sandbox's): standard
library and the `gdb` module only, nothing imported from `sandbox`, no syntax newer than Python
3.7. `sandbox.inspector.gdb_session` loads it with `-ix` (before any attach, so the stop is timed
from just before `attach` to just after `detach`) and runs `sandbox_inspect()`, which reads its
parameters from $SANDBOX_INSPECT_PARAMS and prints one line: MARKER and a JSON object.

Safety, because the target is a live service:
- gdb runs with -readnever (symbol tables only, no DWARF), so the attach is short; every call
  therefore states its C type (a cast to a function pointer type).
- Calls run on a thread that is not inside the allocator (no malloc/free/... among its innermost
  frames): a call on a thread that holds an allocator lock would wait for itself.
- Allocator calls run with scheduler-locking off (gdb's default): the other threads run during
  the call, so a lock one of them holds is released and the call cannot hang on it.
- CPython's counters walk pymalloc's arenas without a lock: those calls run with
  scheduler-locking on, so no thread changes the arenas meanwhile, and they allocate nothing
  (the stream they write to is opened, unbuffered, before).
- `unwindonsignal` is on: a call that faults is unwound and the target goes on as before.
- Strings and out-parameters live in a private mmap, not in the allocator being measured; it
  is unmapped before the detach.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Any

import gdb

MARKER = "@@sandbox-inspect@@ "
PARAMS_ENV = "SANDBOX_INSPECT_PARAMS"
_NAMES: dict[str, Any] = {}
"""The counters to read (params["counters"]: the agent's own lists, sent by the harness)."""

_SCRATCH_BYTES = 1 << 16
_NAME_OFFSET = 1024  # strings (counter names) go here; out-parameters below it
_TEXT_OFFSET = 4096  # _PyObject_DebugMallocStats writes from here to the end
_PROT_READ_WRITE = 3
_MAP_PRIVATE_ANONYMOUS = 0x22
_IONBF = 2
_FRAMES_CHECKED = 24
_SIZE_T = "unsigned long"

# Frames that may hold an allocator lock, or be half-way through changing the allocator's state.
_IN_ALLOCATOR = re.compile(
    r"alloc|free|mallinfo|mallctl|malloc_trim|arena|tcache|sbrk|^_*(je|tc|mi)_|tcmalloc|"
    r"MallocExtension|lll_lock|mutex_lock",
    re.IGNORECASE,
)

_MALLCTL = f"int (*)(char *, void *, {_SIZE_T} *, void *, {_SIZE_T})"
_NULL = "(void *) 0"


def _call(signature: str, function: str, *args: str) -> int:
    """Call `function` in the target through a cast to `signature`; its result as an int."""
    return int(gdb.parse_and_eval(f"(({signature}) {function})({', '.join(args)})"))


def _call_void(signature: str, function: str, *args: str) -> None:
    gdb.parse_and_eval(f"(({signature}) {function})({', '.join(args)})")


def _exists(symbol: str) -> bool:
    try:
        gdb.parse_and_eval(f"(long) &{symbol}")
    except gdb.error:
        return False
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Scratch:
    """A private anonymous mapping in the target, for strings and out-parameters."""

    def __init__(self) -> None:
        self.address = _call(
            f"void *(*)(void *, {_SIZE_T}, int, int, int, long)",
            "mmap",
            _NULL,
            str(_SCRATCH_BYTES),
            str(_PROT_READ_WRITE),
            str(_MAP_PRIVATE_ANONYMOUS),
            "-1",
            "0",
        )
        self.word = int(gdb.lookup_type("void").pointer().sizeof)
        if self.address in (0, (1 << (8 * self.word)) - 1):
            raise gdb.error(f"mmap of {_SCRATCH_BYTES} bytes failed in the target")
        self.inferior = gdb.selected_inferior()

    def pointer(self, offset: int, ctype: str = "void") -> str:
        return f"({ctype} *) {self.address + offset}"

    def string(self, text: str) -> str:
        """Write `text` (NUL-terminated) at the strings offset; its address as a `char *`."""
        self.inferior.write_memory(self.address + _NAME_OFFSET, text.encode("ascii") + b"\0")
        return self.pointer(_NAME_OFFSET, "char")

    def word_at(self, offset: int, value: int = 0) -> str:
        """Store `value` as a size_t at `offset`; its address."""
        self.inferior.write_memory(self.address + offset, value.to_bytes(self.word, sys.byteorder))
        return self.pointer(offset)

    def read_word(self, offset: int) -> int:
        raw = bytes(self.inferior.read_memory(self.address + offset, self.word))
        return int.from_bytes(raw, sys.byteorder)

    def read_text(self, offset: int) -> str:
        raw = bytes(self.inferior.read_memory(self.address + offset, _SCRATCH_BYTES - offset))
        return raw.split(b"\0", 1)[0].decode("ascii", "replace")

    def close(self) -> None:
        _call(f"int (*)(void *, {_SIZE_T})", "munmap", self.pointer(0), str(_SCRATCH_BYTES))


def _scheduler_locking(on: bool) -> None:
    gdb.execute(f"set scheduler-locking {'on' if on else 'replay'}", to_string=True)


# --- the allocators -------------------------------------------------------------------------


def _glibc(scratch: Scratch, out: dict[str, Any]) -> None:
    # mallinfo2 returns a struct of ten size_t: cast to an array of them, gdb passes the hidden
    # return buffer as the ABI wants (a struct of 80 bytes is returned in memory).
    if _exists("mallinfo2"):
        values = gdb.parse_and_eval(f"({_SIZE_T}[{len(_NAMES['mallinfo'])}]) mallinfo2()")
        out["source"] = "mallinfo2()"
    else:
        values = gdb.parse_and_eval(f"(int[{len(_NAMES['mallinfo'])}]) mallinfo()")
        out["source"] = "mallinfo()"
        out["note"] = "glibc older than 2.33: mallinfo() counts in int and wraps at 4 GiB"
    out["raw"] = {name: int(values[i]) for i, name in enumerate(_NAMES["mallinfo"])}


def _glibc_release(scratch: Scratch) -> dict[str, Any]:
    return {"called": "malloc_trim(0)", "result": _call(f"int (*)({_SIZE_T})", "malloc_trim", "0")}


def _jemalloc(scratch: Scratch, out: dict[str, Any]) -> None:
    epoch = scratch.word_at(24, 1)
    _call(_MALLCTL, "mallctl", scratch.string("epoch"), _NULL, _NULL, epoch, str(scratch.word))
    out["source"] = 'mallctl("stats.*") after mallctl("epoch")'
    raw = {}
    for stat in _NAMES["jemalloc"]:
        name, value = scratch.string(stat), scratch.word_at(0)
        size = scratch.word_at(16, scratch.word)
        if _call(_MALLCTL, "mallctl", name, value, size, _NULL, "0") == 0:
            raw[stat] = scratch.read_word(0)
    out["raw"] = raw
    if not raw:
        out["note"] = "mallctl has no stats.*: this jemalloc was built without --enable-stats"


def _jemalloc_release(scratch: Scratch) -> dict[str, Any]:
    command = f"arena.{int(_NAMES['jemalloc_arenas_all'])}.purge"
    rc = _call(_MALLCTL, "mallctl", scratch.string(command), _NULL, _NULL, _NULL, "0")
    return {"called": f'mallctl("{command}")', "result": rc}


def _tcmalloc(scratch: Scratch, out: dict[str, Any]) -> None:
    signature = f"int (*)(char *, {_SIZE_T} *)"
    out["source"] = "MallocExtension_GetNumericProperty()"
    raw = {}
    for prop in _NAMES["tcmalloc"]:
        name, value = scratch.string(prop), scratch.word_at(0)
        if _call(signature, "MallocExtension_GetNumericProperty", name, value):
            raw[prop] = scratch.read_word(0)
    out["raw"] = raw


def _tcmalloc_release(scratch: Scratch) -> dict[str, Any]:
    _call_void("void (*)(void)", "MallocExtension_ReleaseFreeMemory")
    return {"called": "MallocExtension_ReleaseFreeMemory()", "result": None}


def _mimalloc(scratch: Scratch, out: dict[str, Any]) -> None:
    slots = [scratch.word_at(8 * i) for i in range(len(_NAMES["mimalloc"]))]
    signature = f"void (*)({', '.join([f'{_SIZE_T} *'] * len(slots))})"
    _call_void(signature, "mi_process_info", *slots)
    out["source"] = "mi_process_info()"
    out["raw"] = {name: scratch.read_word(8 * i) for i, name in enumerate(_NAMES["mimalloc"])}


def _mimalloc_release(scratch: Scratch) -> dict[str, Any]:
    _call_void("void (*)(int)", "mi_collect", "1")
    return {"called": "mi_collect(true)", "result": None}


_READERS = {"glibc": _glibc, "jemalloc": _jemalloc, "tcmalloc": _tcmalloc, "mimalloc": _mimalloc}
_RELEASERS = {
    "glibc": _glibc_release,
    "jemalloc": _jemalloc_release,
    "tcmalloc": _tcmalloc_release,
    "mimalloc": _mimalloc_release,
}


def _counters(family: str, scratch: Scratch) -> dict[str, Any]:
    out: dict[str, Any] = {"raw": {}}
    try:
        _READERS[family](scratch, out)
    except gdb.error as exc:
        out["error"] = _first_line(exc)
    return out


# --- CPython --------------------------------------------------------------------------------


def _python_version() -> str | None:
    if _exists("Py_Version"):  # 3.11+: PY_VERSION_HEX as a constant
        hexversion = int(gdb.parse_and_eval("*(unsigned int *) &Py_Version"))
        return f"{hexversion >> 24}.{(hexversion >> 16) & 0xFF}.{(hexversion >> 8) & 0xFF}"
    if _exists("Py_GetVersion"):  # older: "3.10.12 (main, ...)" in a static buffer
        text = gdb.parse_and_eval("((char *(*)(void)) Py_GetVersion)()").string()
        return str(text).split()[0] if text else None
    return None


def _python(scratch: Scratch) -> dict[str, Any] | None:
    version = _python_version()
    if version is None:
        return None
    out: dict[str, Any] = {"version": version}
    if tuple(int(part) for part in version.split(".")[:2]) >= (3, 12):
        # From 3.12 both functions find the interpreter through the calling thread's state,
        # which a thread waiting outside the GIL does not have.
        out["note"] = "CPython 3.12 and later need the GIL for these counters: not read"
        return out
    if not _exists("_Py_GetAllocatedBlocks"):
        out["note"] = "this Python does not export _Py_GetAllocatedBlocks"
        return out
    stream = 0
    try:
        if _exists("_PyObject_DebugMallocStats"):
            stream = _open_stream(scratch)
        _scheduler_locking(True)
        try:
            out["allocated_blocks"] = _call("long (*)(void)", "_Py_GetAllocatedBlocks")
            if stream:
                used = _call("int (*)(void *)", "_PyObject_DebugMallocStats", f"(void *) {stream}")
                out["pymalloc_in_use"] = bool(used)
        finally:
            _scheduler_locking(False)
        if stream:  # unbuffered: the text is all there; the mapping was zeros, so it ends in NUL
            out["pymalloc_stats"] = scratch.read_text(_TEXT_OFFSET)
    except gdb.error as exc:
        out["error"] = _first_line(exc)
    finally:
        if stream:
            _call("int (*)(void *)", "fclose", f"(void *) {stream}")
    return out


def _open_stream(scratch: Scratch) -> int:
    """An unbuffered FILE writing into the scratch text area (fmemopen allocates: call it first)."""
    stream = _call(
        f"void *(*)(void *, {_SIZE_T}, char *)",
        "fmemopen",
        scratch.pointer(_TEXT_OFFSET),
        str(_SCRATCH_BYTES - _TEXT_OFFSET - 1),
        scratch.string("w"),
    )
    if stream:
        _call(
            f"int (*)(void *, char *, int, {_SIZE_T})",
            "setvbuf",
            f"(void *) {stream}",
            "(char *) 0",
            str(_IONBF),
            "0",
        )
    return stream


# --- the session ----------------------------------------------------------------------------


def _clean_thread() -> gdb.InferiorThread | None:
    """The main thread if no allocator frame is near its top, else the first such thread."""
    threads = sorted(gdb.selected_inferior().threads(), key=lambda t: t.num)
    main = [t for t in threads if t.ptid[1] == t.ptid[0]]
    for thread in main + [t for t in threads if t not in main]:
        thread.switch()
        if _outside_allocator():
            return thread
    return None


def _outside_allocator() -> bool:
    try:
        frame: gdb.Frame | None = gdb.newest_frame()
        for _ in range(_FRAMES_CHECKED):
            if frame is None:
                return True
            if _IN_ALLOCATOR.search(frame.name() or ""):
                return False
            frame = frame.older()
    except gdb.error:
        return False
    return True


def _malloc_owner(scratch: Scratch, pid: int) -> str | None:
    """The file whose `malloc` the target's own calls reach.

    dlsym(RTLD_DEFAULT, "malloc") asks the dynamic linker, in its own search order; gdb's
    lookup would answer from the few symbol files it read. The address is then found in
    /proc/PID/maps. A non-PIE executable that takes malloc's address exports its PLT stub as
    the canonical `malloc`: then the GOT slot the stub jumps through holds the real one.
    """
    try:
        address = _call("void *(*)(void *, char *)", "dlsym", _NULL, scratch.string("malloc"))
    except gdb.error:
        address = 0
    owner = _mapped_file(pid, address) if address else None
    if owner is not None and owner == os.readlink(f"/proc/{pid}/exe"):
        try:
            bound = int(gdb.parse_and_eval("*(unsigned long *) &'malloc@got.plt'"))
        except gdb.error:
            bound = 0  # no PLT slot: the executable defines malloc itself
        owner = (_mapped_file(pid, bound) if bound else None) or owner
    if owner is not None:
        return owner
    try:  # glibc older than 2.34 without libdl mapped: gdb's lookup, in the files it read
        text = gdb.execute("info symbol malloc", to_string=True).strip()
    except gdb.error:
        return None
    found = re.search(r" in section \S+ of (/.*)$", text)
    if found:
        return found.group(1)
    if " in section " not in text:
        return None
    return os.readlink(f"/proc/{pid}/exe")  # no " of FILE": the main executable


def _mapped_file(pid: int, address: int) -> str | None:
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            start, end = (int(part, 16) for part in fields[0].split("-"))
            if start <= address < end:
                path = fields[5].strip() if len(fields) == 6 else ""
                path = path[: -len(" (deleted)")] if path.endswith(" (deleted)") else path
                return path if path.startswith("/") else None
    return None


def _family(owner: str | None, patterns: list[list[str]], expected: str) -> str:
    if owner is None:
        return expected
    name = os.path.basename(owner)
    for pattern, family in patterns:
        if pattern in name:
            return family
    return name


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Phases:
    """Milliseconds spent in each step of the session, in order (reported as "phases_ms")."""

    def __init__(self, out: dict[str, Any]) -> None:
        self.times: dict[str, float] = out.setdefault("phases_ms", {})
        self.last = time.monotonic()

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.times[name] = (now - self.last) * 1000
        self.last = now


def _session(params: dict[str, Any], out: dict[str, Any]) -> None:
    phases = _Phases(out)
    thread = _clean_thread()
    phases.done("thread")
    if thread is None:
        out["error"] = "busy"
        out["message"] = "every thread is inside the allocator"
        return
    out["thread"] = thread.ptid[1]
    scratch = Scratch()
    try:
        owner = _malloc_owner(scratch, params["pid"])
        family = _family(owner, params["families"], params["expected"])
        out["malloc_owner"] = owner
        out["family"] = family
        phases.done("owner")
        if family in _READERS:
            out["counters"] = _counters(family, scratch)
            phases.done("counters")
        if params.get("python", True):
            out["python"] = _python(scratch)
            phases.done("python")
        if params.get("trim") and family in _RELEASERS:
            before = _rss_bytes(params["pid"])
            release = _RELEASERS[family](scratch)
            release["rss_before_bytes"] = before
            release["rss_after_bytes"] = _rss_bytes(params["pid"])
            out["release"] = release
            phases.done("trim")
            out["counters_after"] = _counters(family, scratch)
            phases.done("counters_after")
    finally:
        scratch.close()
        phases.done("unmap")


_EXITED: dict[str, Any] = {}
"""How the target ended, when it ended while gdb held it (gdb's `exited` event)."""


def _on_exit(event: Any) -> None:
    _EXITED["exited"] = True
    _EXITED["exit_code"] = getattr(event, "exit_code", None)


def _emit(out: dict[str, Any]) -> None:
    sys.stdout.write(MARKER + json.dumps(out) + "\n")
    sys.stdout.flush()


def sandbox_inspect() -> None:
    """Attach to the process the parameters name, read (and trim), detach, print the answer."""
    params = json.loads(os.environ[PARAMS_ENV])
    _NAMES.update(params["counters"])
    out: dict[str, Any] = {"version": 1}
    gdb.events.exited.connect(_on_exit)
    started = time.monotonic()
    try:
        gdb.execute(f"attach {int(params['pid'])}", to_string=True)
    except gdb.error as exc:
        out["error"] = "attach"
        out["message"] = str(exc).strip()
        _emit(out)
        return
    out["attach_ms"] = (time.monotonic() - started) * 1000
    out["phases_ms"] = {"attach": out["attach_ms"]}
    try:
        _session(params, out)
    except gdb.error as exc:
        out["error"] = "call"
        out["message"] = str(exc).strip()
    except Exception as exc:  # a bug in this file: still detach, and say what happened
        out["error"] = "script"
        out["message"] = f"{type(exc).__name__}: {exc}"
    finally:
        detaching = time.monotonic()
        if gdb.selected_inferior().pid == 0 or _EXITED:  # the process exited under us
            out["exited"] = True
            out["exit_code"] = _EXITED.get("exit_code")
        try:
            gdb.execute("detach", to_string=True)
            out["detached"] = True
        except gdb.error as exc:
            out["detached"] = False
            out["detach_message"] = _first_line(exc)
        out["stopped_ms"] = (time.monotonic() - started) * 1000
        out.setdefault("phases_ms", {})["detach"] = (time.monotonic() - detaching) * 1000
        _emit(out)
