"""`--profile memray`: run the server under `memray run`, then write its flamegraph and summary.

memray intercepts allocation calls inside the process and forwards them to whichever malloc is
loaded, so the allocator under test stays the one the harness preloaded (the run still checks
/proc/PID/maps). Its bookkeeping lives in the same process, so RSS includes memray's own memory;
the result says so, and compare should not mix profiled and unprofiled runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from sandbox.results.heap import ProfileInfo

OVERHEAD_NOTE = (
    "RSS includes memray's own tracking memory and the run is slower under memray; compare "
    "profiled runs only with profiled runs"
)


@dataclass(frozen=True)
class MemrayProfile:
    """Where the capture and reports go, and how memray runs."""

    folder: Path
    native: bool = True
    """Record native (C) stacks too: shows which C paths (json, copy) allocate."""

    @property
    def capture(self) -> Path:
        return self.folder / "memray.bin"

    def wrap(self) -> list[str]:
        """Interpreter arguments that put `-m sandbox.server` under memray."""
        self.folder.mkdir(parents=True, exist_ok=True)
        # --aggregate keeps the capture small (this workload makes millions of allocations).
        args = ["-m", "memray", "run", "--quiet", "--force", "--aggregate", "-o", str(self.capture)]
        return args + (["--native"] if self.native else [])

    def finish(self) -> ProfileInfo:
        """Render the flamegraph and stats; returns what the result records under `profile`."""
        info = ProfileInfo(
            tool="memray",
            native=self.native,
            mode="aggregate",
            overhead=OVERHEAD_NOTE,
            capture=str(self.capture),
        )
        if not self.capture.exists():
            return replace(info, error="memray wrote no capture (the server may have been killed)")
        capture_bytes = self.capture.stat().st_size
        flamegraph = self.folder / "flamegraph.html"
        stats = self.folder / "stats.txt"
        flamegraph_at, flamegraph_error = self._render(
            "flamegraph", ["flamegraph", "--force", "-o", str(flamegraph)], None, flamegraph
        )
        # `memray stats` needs a full capture (hundreds of MB for this workload); `summary`
        # gives the allocating locations by memory from an aggregated one.
        stats_at, stats_error = self._render("stats", ["summary"], stats, stats)
        return replace(
            info,
            capture_bytes=capture_bytes,
            flamegraph=flamegraph_at,
            flamegraph_error=flamegraph_error,
            stats=stats_at,
            stats_error=stats_error,
        )

    def _render(
        self, name: str, argv: list[str], out: Path | None, product: Path
    ) -> tuple[str | None, str | None]:
        """Run `memray ARGV CAPTURE` (its output to `out`); (the product's path, or the error)."""
        try:
            done = subprocess.run(
                [sys.executable, "-m", "memray", *argv, str(self.capture)],
                env={**os.environ, "COLUMNS": "200"},  # rich tables, not truncated
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        except (subprocess.TimeoutExpired, KeyboardInterrupt) as exc:
            return None, f"not rendered ({type(exc).__name__}); run: memray {name}"
        if done.returncode != 0:
            return None, (done.stderr or done.stdout).strip()[-500:]
        if out is not None:
            out.write_text(done.stdout)
        return str(product), None
