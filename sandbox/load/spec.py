"""What load a run sends: one batch's load (`LoadSpec`) and the batches' schedule (`Schedule`).

Config builds both, the driver runs a `LoadSpec` against a host URL, and the result records
both as they are (its `load` section, `sandbox.results.model.LoadInfo`). Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from sandbox.load.models import LoadModel


@dataclass(frozen=True)
class LoadSpec:
    """One batch of load: which Locust file, which plans, how many users and how long."""

    locustfile: Path
    """The Locust file; in a result, relative to the repository when it lies inside it."""
    tags: tuple[str, ...]
    """Plans (Locust tags) selected; empty: every task of a user's own Locust file."""
    spawn_rate: float
    """Users started per second."""
    iterations: int
    """iterations model: each selected plan is sent this many times in all; Locust then stops."""
    model: LoadModel = field(default_factory=LoadModel)
    """The load model of every batch; its `users` are the concurrent Locust users."""
    workers: int = 0
    """0: one Locust process; N: a master and N worker processes (Locust's distributed mode)."""
    # Only for driving Locust: none of these is in a result file (format 3 has no key for
    # them), a loaded result reads the defaults, and equality ignores them.
    drill: bool = field(default=True, compare=False)
    """The Locust file is ours and understands --iterations (a user's may not)."""
    timeout_s: float = field(default=900.0, compare=False)
    """The batch's time limit (run.batch_timeout_s; Locust's --run-time is a safety net)."""
    master_host: str = field(default="127.0.0.1", compare=False)
    """The address the Locust master binds: loopback unless workers on other machines must
    reach it (--master-bind)."""
    master_port: int | None = field(default=None, compare=False)
    """The master's port; None: a free one each batch (only local workers need to find it)."""
    remote_workers: int = field(default=0, compare=False)
    """Workers started by hand on other machines that the master waits for, besides `workers`
    (--expect-remote-workers)."""

    @property
    def expected_workers(self) -> int:
        """Workers the master waits for, local and remote; 0: one Locust process, no master."""
        return self.workers + self.remote_workers

    @property
    def users(self) -> int:
        """Concurrent Locust users (the most a paced model may start)."""
        return self.model.users

    def relative_to(self, root: Path) -> LoadSpec:
        """The same load with the Locust file named relative to `root` when it lies inside it."""
        try:
            inside = self.locustfile.resolve().relative_to(root.resolve())
        except ValueError:
            return self
        return replace(self, locustfile=inside)


@dataclass(frozen=True)
class Schedule:
    """The run's timeline around the batches: baseline, batches with pauses between, idle."""

    batches: int
    """Load batches."""
    pause_s: float
    """Idle pause between batches."""
    baseline_s: float
    """Idle period before the first batch."""
    idle_s: float
    """Idle period after the last batch."""
