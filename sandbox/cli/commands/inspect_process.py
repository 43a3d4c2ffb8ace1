"""`sandbox inspect PID`: a process the sandbox did not start, looked at without harm."""

from __future__ import annotations

import click

from sandbox.cli import flags


@click.command("inspect")
@click.argument("pid", type=click.IntRange(min=1))
@click.option("--trim", is_flag=True, help="Ask the allocator for free memory back; show RSS.")
@click.option(
    "--watch",
    "watch_s",
    type=click.FloatRange(min=0, min_open=True),
    help="Look again every --interval for this many seconds, then give a verdict.",
)
@click.option(
    "--interval",
    "interval_s",
    type=click.FloatRange(min=0.2),
    help="Seconds between looks with --watch (default 5).",
)
@click.option(
    "--limit",
    "limit_bytes",
    type=flags.SizeType(),
    help="With --watch: say when RSS, still climbing, would reach this size, e.g. 2GiB.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout (keys below).")
@click.option(
    "--no-attach", is_flag=True, help="Read /proc only: no gdb, the process is never stopped."
)
@click.option(
    "--via",
    type=click.Choice(["auto", "agent", "gdb"]),
    default="auto",
    show_default=True,
    help="Read the counters through the sandbox's agent (never stops the process) or gdb; "
    "auto: the agent when the process has one.",
)
@click.option(
    "--recheck",
    is_flag=True,
    help="Run the preflight on canaries again instead of using its kept verdict.",
)
def inspect_cmd(
    pid: int,
    trim: bool,
    watch_s: float | None,
    interval_s: float | None,
    limit_bytes: int | None,
    as_json: bool,
    no_attach: bool,
    via: str,
    recheck: bool,
) -> None:
    """Where the memory of a running process PID is, and whose it is.

    Reads /proc/PID/smaps (anonymous and file-backed RSS; the heap, glibc's arena heaps,
    thread stacks and other mappings: how many, how resident) and which allocator serves
    malloc. Then gdb attaches for a moment and reads, inside the process, the allocator's own
    counters (glibc mallinfo2, jemalloc mallctl stats, tcmalloc MallocExtension, mimalloc
    mi_process_info; in use and held as `sandbox run` counts them) and CPython's (allocated
    blocks, pymalloc arenas). The process is stopped for the attach; the time is shown.

    Before gdb touches the process, the same look runs on two throwaway canaries (one asleep
    in system calls, one busy in floating-point and vector work that checks its results),
    under the process's own interpreter and allocator: if either dies, gets an error it did
    not ask for or computes a wrong value, inspect refuses and never attaches. A gdb older
    than 14 is refused outright on CPUs whose register state it cannot restore (AMX). The
    verdict is kept per host, gdb and interpreter (--recheck runs it again). A process
    started by `sandbox run` is read through its agent instead: no attach at all.

    --trim asks the allocator for free memory back (malloc_trim(0), jemalloc
    arena.4096.purge, tcmalloc ReleaseFreeMemory, mimalloc mi_collect) and reports RSS just
    before and after. --watch SECONDS looks every --interval and ends with a verdict in the
    words of `sandbox compare`: live allocations (a leak or a cache), free memory the
    allocator keeps (fragmentation), or memory outside malloc. Over the looks it reads growth
    as `sandbox run` reads its batches, in time: whether RSS, live and kept-but-free level off
    or keep climbing, where they go (twice the watch's length from the first look, with a
    90 % interval; 5 looks or more for a full read, 3 for a weak one), and with --limit when
    RSS would reach it.

    \b
    --json prints one object. A single look ("format": "sandbox-inspect", "version": 1):
      pid, command, taken_at, allocator,
      malloc {family, library, mapped_allocators, ld_preload, owner},
      rss {rss_bytes, anonymous_bytes, file_bytes, swap_bytes, anon_huge_bytes,
           regions [{name, mappings, size_bytes, rss_bytes}]},
      counters {allocator, in_use_bytes, held_bytes, free_kept_bytes, raw, source, note},
      python {version, allocated_blocks, pymalloc {arenas, arena_bytes, allocated_bytes,
              available_bytes, highwater_arenas}, note},
      trim {called, result, rss_before_bytes, rss_after_bytes, returned_bytes,
            held_before_bytes, held_after_bytes},
      stopped_ms, attach_ms, phases_ms {attach, thread, owner, counters, python, ...},
      problem, route (proc|agent|gdb), debugger {path, version, banner, build},
      preflight {passed, failure, summary, checked_at, took_s, cached, canaries [...]}
    A watch ("format": "sandbox-inspect-watch", "version": 2): pid, duration_s, interval_s,
      interrupted, samples [{t_s, snapshot}], growth {duration_s, rss_bytes, in_use_bytes,
      held_bytes, free_kept_bytes, outside_bytes, pymalloc_bytes, pymalloc_used_bytes},
      reads [{quantity, state, model, weak, looks, runs, rise_bytes,
             forecast {t_s, bytes, low_bytes, high_bytes}, interval, contenders,
             held_out_rms_bytes, per_minute_bytes, level_bytes}],
      limit {limit_bytes, words, reach {after_s, soonest_s, latest_s}}, verdict,
      stopped_ms {median, max, n}
    What could not be read is null. Exit 1 when the process is gone, may not be traced, gdb
    is missing or the allocator is not recognised (the RSS split is still printed).
    """
    import functools
    import json

    from sandbox.errors import InspectError
    from sandbox.inspector import inspection, preflight, render
    from sandbox.inspector import watch as watching

    if interval_s is not None and watch_s is None:
        raise click.UsageError("--interval goes with --watch")
    if limit_bytes is not None and watch_s is None:
        raise click.UsageError("--limit goes with --watch")
    if trim and watch_s is not None:
        raise click.UsageError("--trim and --watch do not go together; trim after the watch")
    if no_attach and trim:
        raise click.UsageError("--trim needs to attach; drop --no-attach")
    if no_attach and via != "auto":
        raise click.UsageError("--via reads counters; drop --no-attach")
    if recheck:
        preflight.forget()
    take = functools.partial(inspection.take, via=via)
    if watch_s is None:
        snapshot = take(pid, attach=not no_attach, trim=trim)
        click.echo(json.dumps(snapshot.to_dict()) if as_json else render.snapshot_text(snapshot))
        problem = snapshot.problem
    else:
        shown = None if as_json else (lambda s: click.echo(render.sample_line(s)))
        result = watching.watch(
            pid,
            watch_s,
            interval_s or 5.0,
            attach=not no_attach,
            limit_bytes=limit_bytes,
            on_sample=shown,
            take=take,
        )
        click.echo(json.dumps(result.to_dict()) if as_json else render.watch_end(result))
        problem = next((s.snapshot.problem for s in result.samples if s.snapshot.problem), None)
    if problem:
        raise InspectError(problem)
