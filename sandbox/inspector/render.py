"""`sandbox inspect`'s terminal text: a snapshot, a watch's progress lines and its end."""

from __future__ import annotations

from sandbox.inspector.snapshot import Snapshot
from sandbox.inspector.watch import Sample, Watch
from sandbox.units import MIB, mib


def _malloc_line(s: Snapshot) -> str:
    d = s.detection
    evidence = [d.library or "glibc's own"]
    if d.ld_preload:
        evidence.append(f"LD_PRELOAD={d.ld_preload}")
    if s.owner:
        evidence.append(f"malloc resolves to {s.owner}")
    return f"malloc: {s.allocator} ({'; '.join(evidence)})"


def one_line(command: str, limit: int = 160) -> str:
    """A command line on one line (a `python -c` program has newlines), cut at `limit`."""
    text = " ".join(command.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def snapshot_text(s: Snapshot) -> str:
    m = s.memory
    lines = [
        f"process {s.pid}: {one_line(s.command) or '(command line unreadable)'}",
        _malloc_line(s),
        f"RSS {mib(m.rss_bytes)}: anonymous {mib(m.anonymous_bytes)}, "
        f"file-backed {mib(m.file_bytes)}"
        + (f", swapped out {mib(m.swap_bytes)}" if m.swap_bytes else "")
        + (f" ({mib(m.anon_huge_bytes)} in huge pages)" if m.anon_huge_bytes else ""),
        "",
    ]
    width = max([len("kind of mapping"), *(len(r.name) for r in m.regions)])
    lines.append(f"  {'kind of mapping':<{width}}  mappings   size MiB    RSS MiB")
    for r in m.regions:
        lines.append(
            f"  {r.name:<{width}}  {r.mappings:>8}  {r.size_bytes / MIB:>9.1f}  "
            f"{r.rss_bytes / MIB:>9.1f}"
        )
    lines.append("")
    lines += _counter_lines(s)
    return "\n".join(lines)


def _counter_lines(s: Snapshot) -> list[str]:
    if s.route == "proc":
        return ["allocator counters: not read (not attached: --no-attach)"]
    lines = []
    c = s.counters
    if c is None:
        lines.append(f"allocator counters: none known for {s.allocator}")
    else:
        lines.append(f"{c.allocator}'s counters, read inside the process ({c.source or '?'}):")
        lines.append(
            f"  in use {mib(c.in_use_bytes)}, held {mib(c.held_bytes)}, "
            f"free memory kept {mib(c.free_kept_bytes)}"
        )
        if c.raw:
            lines.append("  " + " ".join(f"{k}={v}" for k, v in c.raw.items()))
        if c.note:
            lines.append(f"  note: {c.note}")
    p = s.python
    if p is None:
        lines.append("CPython: not a CPython process (no Py_Version or Py_GetVersion symbol)")
    else:
        parts = []
        if p.allocated_blocks is not None:
            parts.append(f"{p.allocated_blocks:,} allocated blocks")
        if p.pymalloc is not None:
            pm = p.pymalloc
            parts.append(
                f"pymalloc {pm.arenas} arenas ({mib(pm.arena_bytes)}), "
                f"{mib(pm.allocated_bytes)} in blocks in use, {mib(pm.available_bytes)} free"
            )
        text = "; ".join(parts) or "no counters read"
        lines.append(f"CPython {p.version}: {text}")
        if p.note:
            lines.append(f"  note: {p.note}")
    if s.trim is not None:
        t = s.trim
        result = "" if t.result is None else f" returned {t.result}"
        lines.append(
            f"asked for memory back: {t.called}{result}; RSS {mib(t.rss_before_bytes)} -> "
            f"{mib(t.rss_after_bytes)}: {mib(t.returned_bytes)} came back; held "
            f"{mib(t.held_before_bytes)} -> {mib(t.held_after_bytes)}"
        )
    if s.preflight is not None:
        lines.append(f"safety: {s.preflight.get('summary', '')}")
    if s.route == "agent":
        took = s.phases_ms.get("agent")
        answered = "" if took is None else f" (it answered in {took:.0f} ms)"
        lines.append(f"read by the sandbox's agent inside the process: never stopped{answered}")
    else:
        lines.append(
            f"the process was stopped {s.stopped_ms or 0:.0f} ms (attach {s.attach_ms or 0:.0f} ms)"
        )
    return lines


def sample_line(sample: Sample) -> str:
    """One progress line of a watch."""
    s = sample.snapshot
    words = [f"{sample.t_s:7.1f} s", f"RSS {mib(s.memory.rss_bytes)}"]
    if s.counters is not None:
        words += [f"in use {mib(s.counters.in_use_bytes)}", f"held {mib(s.counters.held_bytes)}"]
    if s.python is not None and s.python.pymalloc is not None:
        words.append(f"pymalloc {mib(s.python.pymalloc.arena_bytes)}")
    if s.stopped_ms is not None:
        words.append(f"stopped {s.stopped_ms:.0f} ms")
    return "  ".join(words)


def watch_end(w: Watch) -> str:
    lines = []
    if w.interrupted:
        lines.append(f"interrupted after {len(w.samples)} looks")
    lines += w.read_lines()
    lines.append(w.verdict)
    stops = w.stopped_ms()
    if stops is not None:
        lines.append(
            f"stopped per look: median {stops['median']:.0f} ms, max {stops['max']:.0f} ms "
            f"({stops['n']:.0f} looks)"
        )
    return "\n".join(lines)
