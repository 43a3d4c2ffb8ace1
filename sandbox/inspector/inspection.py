"""One look at a process the sandbox did not start: /proc first, then its agent or gdb."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from sandbox.errors import InspectError
from sandbox.inspector import (
    access,
    agent_route,
    debugger,
    gdb_session,
    preflight,
    pymalloc,
    smaps,
    symbols,
    xsave,
)
from sandbox.inspector.detection import KNOWN_FAMILIES, Detection, detect, read_environ
from sandbox.inspector.normalise import NORMALISERS, NOTES
from sandbox.inspector.smaps import MemoryMap
from sandbox.inspector.snapshot import Counters, PythonCounters, Snapshot, Trim

BUSY_RETRIES = 3
BUSY_PAUSE_S = 0.05

Session = Callable[[gdb_session.Request], dict[str, Any]]


def read_proc(pid: int) -> tuple[str, MemoryMap, Detection]:
    """The command line, the smaps summary and the allocator guess; no attach."""
    access.check_exists(pid)
    command = access.command_line(pid)
    try:
        memory = smaps.read(pid)
        detection = detect(pid)
    except PermissionError:
        raise access.denied(pid, "read the memory map of") from None
    except (FileNotFoundError, ProcessLookupError):
        raise access.exited(pid) from None
    return command, memory, detection


VIAS = ("auto", "agent", "gdb")
AFTER_DETACH_S = 0.1
"""How long a look watches a target after gdb let it go, for a death the look may have caused."""


def take(
    pid: int,
    *,
    attach: bool = True,
    trim: bool = False,
    python: bool = True,
    session: Session | None = None,
    via: str = "auto",
    recheck: bool = False,
) -> Snapshot:
    """Inspect `pid`; with `attach`, read the allocator's and CPython's counters, and with
    `trim` ask the allocator to return free memory.

    The counters come from the sandbox's agent when the process has one (`via` "auto" or
    "agent": it is never stopped), else through gdb (`via` "gdb" forces it): a gdb that can
    restore this host's registers (`debugger`), and only after the same look left two canaries
    alive and right (`preflight`). A `session` given (tests) replaces gdb, and skips both.

    Raises InspectError (TargetExitedError when the process is gone or goes away meanwhile).
    A process whose allocator is not recognised gives a snapshot with `problem` set.
    """
    if via not in VIAS:
        raise ValueError(f"via must be one of {VIAS}")
    base = _base(pid)
    if not attach:
        return base
    if via != "gdb":
        found = _through_agent(base, trim)
        if found is not None:
            return found
        if via == "agent":
            raise InspectError(
                f"process {pid} has no sandbox agent to ask (only processes started by "
                "`sandbox run` or with its agent injected have one); drop --via agent"
            )
    access.check_not_traced(pid)
    if session is not None:
        return _attached(base, trim, python, session)
    chosen = debugger.choose()
    refusal = debugger.refusal(chosen, xsave.host(), pid)
    if refusal:
        raise InspectError(refusal)
    context = preflight.context_for(pid, _environ(pid))
    verdict = checked(chosen, context, python=python, recheck=recheck)
    if not verdict.passed:
        raise InspectError(preflight.refusal(verdict, pid))
    access.check_exists(pid)
    bound = functools.partial(gdb_session.run, gdb=chosen.path)
    snapshot = _attached(base, trim, python, bound)
    _check_alive_after(pid)
    return replace(snapshot, debugger=chosen.to_dict(), preflight=verdict.to_dict())


def checked(
    chosen: debugger.Debugger, context: preflight.Context, *, python: bool, recheck: bool = False
) -> preflight.Verdict:
    """The preflight's verdict for looks through `chosen` at processes like `context`: the
    canaries are looked at by exactly the procedure a real look uses."""
    bound = functools.partial(gdb_session.run, gdb=chosen.path)

    def rehearse(canary_pid: int, canary_trim: bool) -> object:
        return _attached(_base(canary_pid), canary_trim, python, bound)

    return preflight.ensure(chosen, context, rehearse, recheck=recheck)


def readiness() -> str:
    """One line for `sandbox doctor`: which gdb inspect would use, and whether it passed the
    preflight on this host (with this interpreter and no allocator preloaded)."""
    try:
        chosen = debugger.choose()
    except InspectError as exc:
        return f"inspect: {exc}"
    reason = debugger.unsafe(chosen, xsave.host())
    if reason:
        return f"inspect: refused on this host: {reason}; {debugger.FIX}"
    verdict = checked(chosen, preflight.context_for(os.getpid(), {}), python=True)
    return f"inspect: {chosen.describe()}; {verdict.summary()}"


def _base(pid: int) -> Snapshot:
    taken_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    command, memory, detection = read_proc(pid)
    return Snapshot(pid, command, taken_at, detection.family, detection, memory)


def _environ(pid: int) -> dict[str, str] | None:
    try:
        return read_environ(pid)
    except OSError:
        return None


def _through_agent(base: Snapshot, trim: bool) -> Snapshot | None:
    client = agent_route.client_for(base.pid, _environ(base.pid))
    found = agent_route.look(base.pid, client, trim=trim) if client is not None else None
    if found is None:
        return None
    return replace(
        base,
        allocator=found.allocator,
        owner=found.library,
        counters=found.counters,
        python=found.python,
        trim=found.trim,
        phases_ms={"agent": found.took_ms},
        route="agent",
    )


def _attached(base: Snapshot, trim: bool, python: bool, session: Session) -> Snapshot:
    """The look through gdb (or a test's session): symbols, the session, its answer."""
    pid = base.pid
    try:
        files = symbols.symbol_files(pid, base.detection.ld_preload)
    except PermissionError:
        raise access.denied(pid, "read the memory map of") from None
    except (FileNotFoundError, ProcessLookupError):
        raise access.exited(pid) from None
    request = gdb_session.Request(
        pid=pid,
        expected_family=base.detection.family,
        symbol_files=tuple(files),
        trim=trim,
        python=python,
    )
    answer = _answer(request, session)
    return from_answer(base, answer, trim)


def _check_alive_after(pid: int) -> None:
    """TargetExitedError when the target died within AFTER_DETACH_S of gdb's detach."""
    deadline = time.monotonic() + AFTER_DETACH_S
    while True:
        if access.gone(pid):
            raise access.died(pid, access.ended_how(pid), None, after_s=AFTER_DETACH_S)
        if time.monotonic() >= deadline:
            return
        time.sleep(0.02)


def _answer(request: gdb_session.Request, session: Session) -> dict[str, Any]:
    for attempt in range(BUSY_RETRIES):
        answer = session(request)
        gdb_session.check(answer, request.pid)
        if answer.get("error") != "busy":
            return answer
        if attempt + 1 < BUSY_RETRIES:
            time.sleep(BUSY_PAUSE_S)
    raise InspectError(
        f"every thread of process {request.pid} was inside the allocator on "
        f"{BUSY_RETRIES} attempts; try again (a call then could wait for a lock forever)"
    )


def counters_of(family: str, answer: Mapping[str, Any] | None) -> Counters | None:
    """Normalised counters from the gdb answer's "counters" part (None when absent)."""
    if answer is None or family not in NORMALISERS:
        return None
    raw = {str(k): int(v) for k, v in dict(answer.get("raw") or {}).items()}
    in_use, held = NORMALISERS[family](raw)
    notes = [n for n in (answer.get("error"), answer.get("note"), NOTES.get(family)) if n]
    return Counters(
        allocator=family,
        in_use_bytes=in_use,
        held_bytes=held,
        raw=raw,
        source=answer.get("source"),
        note="; ".join(notes) or None,
    )


def python_of(answer: Mapping[str, Any] | None) -> PythonCounters | None:
    if answer is None:
        return None
    text = answer.get("pymalloc_stats")
    stats = pymalloc.parse(text) if text else None
    notes = [n for n in (answer.get("error"), answer.get("note")) if n]
    if answer.get("pymalloc_in_use") is False:
        notes.append("pymalloc is not in use (PYTHONMALLOC=malloc or a debug allocator)")
    elif text is not None and stats is None:
        notes.append("pymalloc's statistics were not in the expected form")
    return PythonCounters(
        version=str(answer["version"]),
        allocated_blocks=answer.get("allocated_blocks"),
        pymalloc=stats,
        note="; ".join(notes) or None,
    )


def from_answer(base: Snapshot, answer: Mapping[str, Any], trim: bool) -> Snapshot:
    """The snapshot `base` completed with what the gdb session found."""
    family = str(answer.get("family") or base.allocator)
    counters = counters_of(family, answer.get("counters"))
    release = answer.get("release")
    trimmed = None
    if release is not None:
        after = counters_of(family, answer.get("counters_after"))
        trimmed = Trim(
            called=str(release["called"]),
            result=release.get("result"),
            rss_before_bytes=int(release["rss_before_bytes"]),
            rss_after_bytes=int(release["rss_after_bytes"]),
            held_before_bytes=counters.held_bytes if counters else None,
            held_after_bytes=after.held_bytes if after else None,
        )
    problem = None
    if family not in KNOWN_FAMILIES:
        owner = answer.get("malloc_owner") or base.detection.library or family
        problem = (
            f"malloc in process {base.pid} comes from {owner}, an allocator inspect cannot "
            f"read (it reads {', '.join(KNOWN_FAMILIES)}); only the RSS split was measured"
        )
    elif counters is not None and counters.held_bytes is None:
        problem = f"{family}'s counters could not be read in process {base.pid}: {counters.note}"
    elif trim and trimmed is None:
        problem = f"nothing was asked of {family} in process {base.pid}"
    return Snapshot(
        pid=base.pid,
        command=base.command,
        taken_at=base.taken_at,
        allocator=family,
        detection=base.detection,
        memory=base.memory,
        owner=answer.get("malloc_owner"),
        counters=counters,
        python=python_of(answer.get("python")),
        trim=trimmed,
        stopped_ms=answer.get("stopped_ms"),
        attach_ms=answer.get("attach_ms"),
        phases_ms={str(k): float(v) for k, v in dict(answer.get("phases_ms") or {}).items()},
        problem=problem,
        route="gdb",
    )
