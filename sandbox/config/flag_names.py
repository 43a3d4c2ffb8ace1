"""The command-line spelling of each setting a flag sets (`pause_s` -> `--pause`): one table,
read by the CLI to build its options (`sandbox.cli.flags`) and by config and the report to name
a setting the way a user types it."""

from __future__ import annotations

FLAG_NAMES: dict[str, str] = {
    "allocator": "--allocator",
    "tags": "--tags",
    "concurrency": "--users",
    "rampup": "--rampup",
    "iterations": "--iterations",
    "batches": "--batches",
    "pause_s": "--pause",
    "baseline_s": "--baseline",
    "idle_s": "--idle",
    "sleep_ms": "--sleep-ms",
    "handler": "--handler",
    "threads": "--threads",
    "pymalloc": "--pymalloc",
    "host_cores": "--host-cores",
    "leak_bytes": "--leak",
    "leak_kind": "--leak-kind",
    "cache_docs": "--cache-docs",
    "pin_objects": "--pin-objects",
    "interval_s": "--interval",
    "max_rss": "--max-rss",
    "hang_timeout_s": "--hang-timeout",
    "trim_s": "--trim",
    "objects": "--objects",
    "collect_garbage": "--collect-garbage",
    "results_dir": "--results-dir",
    "load": "--load",
    "rate": "--rate",
    "to_rate": "--to-rate",
    "duration_s": "--duration",
    "spike_x": "--spike-x",
    "spike_at_s": "--spike-at",
    "spike_s": "--spike-for",
    "load_workers": "--load-workers",
    "workers": "--server-workers",
    "app": "--app",
    "cmd": "--cmd",
    "ready_url": "--ready-url",
    "locustfile": "--locustfile",
}


def flag_for(setting: str) -> str | None:
    """The flag that sets a setting, or None when only files set it."""
    return FLAG_NAMES.get(setting)
