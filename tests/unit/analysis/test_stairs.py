"""The stairs: the steps read from a run's phases and probes, and what each batch added."""

from __future__ import annotations

import itertools
from dataclasses import replace

from sandbox.analysis import stairs
from sandbox.results.sampling import Columns, Phase
from sandbox.units import MIB
from tests.fakes import make_result


def test_steps_are_read_at_each_batch_end_from_samples_and_probes() -> None:
    run = make_result("glibc")
    batches = [p for p in run.phases if p.name.startswith("batch-")]
    t = [0.0, *(p.end_s for p in batches), batches[-1].end_s + 1]
    probes: Columns = {
        "t_s": t,
        "alloc_in_use_bytes": [10 * MIB, 11 * MIB, 12 * MIB, 13 * MIB, 13 * MIB],
        "alloc_held_bytes": [12 * MIB, 20 * MIB, 22 * MIB, 24 * MIB, 24 * MIB],
        "pymalloc_used_bytes": [5 * MIB, 6 * MIB, 7 * MIB, 8 * MIB, 8 * MIB],
        "pymalloc_free_bytes": [1 * MIB] * 5,
    }
    s = stairs.stairs(replace(run, probes=probes))
    assert s is not None
    assert [x.batch for x in s.steps] == [1, 2, 3]
    assert [x.requests for x in s.steps] == list(
        itertools.accumulate(b.requests for b in run.load.stats)
    )
    assert s.start.live_bytes == 15 * MIB and s.start.kept_free_bytes == 3 * MIB
    assert [x.live_bytes for x in s.steps] == [17 * MIB, 19 * MIB, 21 * MIB]
    assert [x.kept_free_bytes for x in s.steps] == [10 * MIB, 11 * MIB, 12 * MIB]
    lines = stairs.steps_table(s)
    assert lines[1].endswith("live +2.0, kept-but-free +1.0 MiB")


def test_a_run_without_batches_or_baseline_has_no_stairs() -> None:
    run = make_result("glibc")
    assert stairs.stairs(replace(run, phases=[Phase("idle", 0.0, 5.0)])) is None
