"""One case of the corpus: its `case.yml`, read into a frozen `Case` (pure; no processes).

A manifest names the public bug (sources: URLs of the issue, the fix, the release note), the
package and the versions (`buggy`, and `fixed` when a release fixed it), what is true of the
buggy version (`truth`, one of TRUTHS, and `why`, in words from the record), the pinned server
packages the case's virtualenv also needs, and the load (`load:`, `sandbox run` options).
The fixed version's truth is always LITTLE: the same load, no growth to explain.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

LEAK, NATIVE, CYCLES, CACHE, ALLOCATOR, LITTLE = (
    "leak",
    "native",
    "cycles",
    "cache",
    "allocator",
    "little",
)
TRUTHS = (LEAK, NATIVE, CYCLES, CACHE, ALLOCATOR, LITTLE)
"""leak: Python objects kept; native: memory a C extension mallocs and never frees; cycles:
garbage only the cyclic collector frees; cache: live memory bounded by the library; allocator:
memory the allocator keeps after frees; little: nothing to explain (a fixed version)."""
MANIFEST = "case.yml"
LOAD_KEYS = {
    "tags": str,
    "users": int,
    "rate": float,
    "duration": float,
    "batches": int,
    "pause": float,
    "baseline": float,
    "idle": float,
    "trim": float,
    "collect_garbage": bool,
}
"""The `load:` keys, and their types; each becomes the `sandbox run` option of its name."""


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Load:
    """The load a case applies: `sandbox run --load rate` with these options."""

    tags: str
    """The Locust file's tasks to run, comma-separated."""
    users: int
    rate: float
    """Requests a second, all users together (a fixed rate: every allocator serves the same)."""
    duration: float
    """Seconds of each batch."""
    batches: int = 3
    """Three, so that the stair read can tell a leak from a cache that levels off."""
    pause: float = 2.0
    baseline: float = 3.0
    idle: float = 5.0
    trim: float = 3.0
    collect_garbage: bool = False
    """A full gc.collect() before the trim, for a case whose truth is reference cycles."""

    def options(self) -> list[str]:
        """The `sandbox run` options of this load."""
        out = ["--load", "rate", "--tags", self.tags, "--users", str(self.users)]
        out += ["--rate", f"{self.rate:g}", "--duration", f"{self.duration:g}"]
        out += ["--batches", str(self.batches), "--pause", f"{self.pause:g}"]
        out += ["--baseline", f"{self.baseline:g}", "--idle", f"{self.idle:g}"]
        out += ["--trim", f"{self.trim:g}"]
        if self.collect_garbage:
            out.append("--collect-garbage")
        return out


@dataclass(frozen=True)
class Case:
    """One public bug: where it is on the record, what installs it, what is true of it."""

    name: str
    folder: Path
    summary: str
    sources: tuple[str, ...]
    package: str
    buggy: str
    fixed: str | None
    truth: str
    why: str
    server: tuple[str, ...]
    """Pinned requirements of the wrapper's server (uvicorn, starlette, ...)."""
    extra: tuple[str, ...]
    """Other pinned requirements the reproducer needs (numpy for dask, ...)."""
    app: str
    """The wrapper, module:attr, in the case's folder."""
    load: Load
    advise_budget: str | None
    """`sandbox advise --budget` for an allocator-held case; None: no race."""
    advise_arms: tuple[str, ...] = ()
    """`sandbox advise --arms`: the remedies to race (empty: the whole catalogue), so that a
    race of a few arms fits a short budget."""

    def versions(self) -> list[tuple[str, str]]:
        """(version, truth) to run: the buggy version with the case's truth, the fixed one with
        LITTLE."""
        out = [(self.buggy, self.truth)]
        if self.fixed is not None:
            out.append((self.fixed, LITTLE))
        return out


def _get(data: dict[str, Any], key: str, kind: type, where: str, default: Any = ...) -> Any:
    if data.get(key) is None:  # absent, or `key: null`
        if default is ...:
            raise ManifestError(f"{where}: missing key '{key}'")
        return default
    value = data[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ManifestError(f"{where}: '{key}' must be a {kind.__name__}, not {value!r}")
    return value


def _strings(data: dict[str, Any], key: str, where: str, required: bool) -> tuple[str, ...]:
    value = _get(data, key, list, where, ... if required else [])
    if not all(isinstance(v, str) and v for v in value) or (required and not value):
        raise ManifestError(f"{where}: '{key}' must be a non-empty list of strings")
    return tuple(value)


def _load(data: dict[str, Any], where: str) -> Load:
    unknown = sorted(set(data) - set(LOAD_KEYS))
    if unknown:
        raise ManifestError(f"{where}: unknown key '{unknown[0]}' (known: {', '.join(LOAD_KEYS)})")
    values = {k: _get(data, k, t, where, None) for k, t in LOAD_KEYS.items()}
    return Load(**{k: v for k, v in values.items() if v is not None})


def parse(data: dict[str, Any], folder: Path) -> Case:
    """A case from a manifest's parsed YAML (`folder`: where it and its wrapper live)."""
    where = str(folder / MANIFEST)
    truth = _get(data, "truth", str, where)
    if truth not in TRUTHS or truth == LITTLE:
        raise ManifestError(f"{where}: 'truth' must be one of {', '.join(TRUTHS[:-1])}")
    sources = _strings(data, "sources", where, required=True)
    if not all(s.startswith("https://") for s in sources):
        raise ManifestError(f"{where}: every source must be an https:// URL")
    advise = _get(data, "advise", dict, where, {})
    budget = _get(advise, "budget", str, f"{where} advise", None)
    arms = _strings(advise, "arms", f"{where} advise", required="arms" in advise)
    if arms and budget is None:
        raise ManifestError(f"{where}: 'advise' names arms but no 'budget'")
    if budget is not None and truth != ALLOCATOR:
        raise ManifestError(f"{where}: 'advise' is for a case whose truth is '{ALLOCATOR}'")
    return Case(
        name=_get(data, "name", str, where),
        folder=folder,
        summary=_get(data, "summary", str, where),
        sources=sources,
        package=_get(data, "package", str, where),
        buggy=_get(data, "buggy", str, where),
        fixed=_get(data, "fixed", str, where, None),
        truth=truth,
        why=_get(data, "why", str, where),
        server=_strings(data, "server", where, required=True),
        extra=_strings(data, "extra", where, required=False),
        app=_get(data, "app", str, where, "app:app"),
        load=_load(_get(data, "load", dict, where), f"{where} load"),
        advise_budget=budget,
        advise_arms=arms,
    )


def load_case(folder: Path) -> Case:
    """The case in `folder` (its case.yml)."""
    path = folder / MANIFEST
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ManifestError(f"{path}: cannot read it ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ManifestError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: must be a mapping of keys")
    return parse(data, folder)


def load_cases(root: Path) -> list[Case]:
    """Every case under `root` (each sub-folder with a case.yml), by name; names are unique."""
    cases = [load_case(p.parent) for p in sorted(root.glob(f"*/{MANIFEST}"))]
    names = [c.name for c in cases]
    for name in names:
        if names.count(name) > 1:
            raise ManifestError(f"{root}: two cases are named '{name}'")
    return cases
