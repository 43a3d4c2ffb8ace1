"""The run's use of the agents: the probe's sums and per-process columns, what a missing answer
becomes, the notes, the trim asked of each process, and the wait before sampling (fake agents)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest

from sandbox.measure import agents
from sandbox.measure.agent_client import (
    AgentError,
    CollectResult,
    InterpreterCounters,
    MemorySnapshot,
    PymallocCounters,
    PymallocUsed,
)
from sandbox.measure.runner import probe_timeout_s
from sandbox.results.releases import Freed, MemoryState, Released, TrimAnswer
from sandbox.results.sampling import AgentProcess
from sandbox.units import MIB

Answer = MemorySnapshot | AgentError | None


def snap(pid: int, in_use: int | None, held: int | None, blocks: int = 1000) -> MemorySnapshot:
    return MemorySnapshot(
        allocator="glibc",
        library=None,
        in_use_bytes=in_use,
        held_bytes=held,
        raw={},
        note=None,
        rss_bytes=(held or 0) + 10 * MIB,
        pid=pid,
        python=InterpreterCounters(blocks, (0, 0, 0), None, None, None),
        extra={},
        took_ms=0.2,
    )


@dataclass
class FakeAgents:
    """Answers each pid with the next of its scripted answers (the last one repeats)."""

    script: dict[int, list[Answer]]
    trims: dict[int, TrimAnswer | AgentError | None] = field(default_factory=dict)
    collections: dict[int, CollectResult | AgentError | None] = field(default_factory=dict)
    asked: list[int] = field(default_factory=list)
    timeouts: list[float | None] = field(default_factory=list)
    fresh: list[bool] = field(default_factory=list)
    on_ask: Callable[[], None] = lambda: None

    def snapshot(
        self,
        pid: int,
        *,
        gc_objects: bool = False,
        timeout_s: float | None = None,
        fresh: bool = False,
    ) -> MemorySnapshot | None:
        self.asked.append(pid)
        self.timeouts.append(timeout_s)
        self.fresh.append(fresh)
        self.on_ask()
        answers = self.script.get(pid, [None])
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, AgentError):
            raise answer
        return answer

    def trim(self, pid: int, timeout_s: float = 30.0) -> TrimAnswer | None:
        answer = self.trims.get(pid)
        if isinstance(answer, AgentError):
            raise answer
        return answer

    def collect(self, pid: int, timeout_s: float = 60.0) -> CollectResult | None:
        answer = self.collections.get(pid)
        if isinstance(answer, AgentError):
            raise answer
        return answer


WORKERS = [("main", 10), ("w1", 11), ("w2", 12)]
NOT_GIVEN = dict.fromkeys(
    (
        "alloc_active_bytes",
        "pymalloc_used_bytes",
        "pymalloc_free_bytes",
        "pymalloc_arena_bytes",
        "pymalloc_blocks",
    )
)
"""Counters the fakes' glibc without pymalloc figures does not give: None sums."""


def probe(
    fake: FakeAgents, budget_s: float = 1.0, clock: Callable[[], float] = lambda: 0.0
) -> agents.AgentProbe:
    return agents.AgentProbe(fake, budget_s, clock=clock, name_of=lambda pid: "python3")


def test_sums_and_per_process_columns() -> None:
    fake = FakeAgents(
        {10: [snap(10, 1 * MIB, 2 * MIB)], 11: [snap(11, 5 * MIB, 8 * MIB)], 12: [None]}
    )
    row = probe(fake).read(WORKERS, per_process=True)
    assert row == {
        "alloc_in_use_bytes": 6 * MIB,
        "alloc_held_bytes": 10 * MIB,
        "py_allocated_blocks": 2000,
        **NOT_GIVEN,
        "alloc_in_use_bytes_main": 1 * MIB,
        "alloc_held_bytes_main": 2 * MIB,
        "alloc_in_use_bytes_w1": 5 * MIB,
        "alloc_held_bytes_w1": 8 * MIB,
    }  # w2 has no agent: no column, not in the sums


def _with_pymalloc(s: MemorySnapshot, used: int, arena: int) -> MemorySnapshot:
    counters = PymallocCounters(
        arenas=arena // MIB,
        arena_bytes=arena,
        used_bytes=used,
        free_bytes=arena - used,
        unused_pool_bytes=0,
        overhead_bytes=0,
        pools=1,
        highwater_arenas=None,
        source="sys._debugmallocstats",
        age_s=0.1,
        every_s=0.5,
        cpu_ms=0.3,
        blocks=used // 64,
    )
    return replace(s, pymalloc=counters)


def test_pymalloc_and_jemalloc_active_columns_are_summed_and_per_process() -> None:
    main = replace(snap(10, MIB, 2 * MIB), allocator="jemalloc", raw={"stats.active": 3 * MIB})
    worker = replace(snap(11, MIB, 2 * MIB), allocator="jemalloc", raw={"stats.active": 5 * MIB})
    fake = FakeAgents(
        {10: [_with_pymalloc(main, 3 * MIB, 4 * MIB)], 11: [_with_pymalloc(worker, MIB, 2 * MIB)]}
    )
    row = probe(fake).read(WORKERS[:2], per_process=True)
    assert row["alloc_active_bytes"] == 8 * MIB
    assert (row["pymalloc_used_bytes"], row["pymalloc_free_bytes"]) == (4 * MIB, 2 * MIB)
    assert row["pymalloc_arena_bytes"] == 6 * MIB
    assert row["pymalloc_blocks"] == (3 * MIB + MIB) // 64
    assert (row["pymalloc_used_bytes_main"], row["pymalloc_free_bytes_w1"]) == (3 * MIB, MIB)
    assert "alloc_active_bytes_main" not in row  # a sum only


def test_one_process_gets_sums_only() -> None:
    row = probe(FakeAgents({10: [snap(10, MIB, 2 * MIB)]})).read([("main", 10)], per_process=False)
    assert row == {
        "alloc_in_use_bytes": MIB,
        "alloc_held_bytes": 2 * MIB,
        "py_allocated_blocks": 1000,
        **NOT_GIVEN,
    }


def test_a_counter_the_allocator_does_not_keep_is_none_not_zero() -> None:
    fake = FakeAgents({10: [snap(10, None, 4 * MIB)], 11: [snap(11, None, 6 * MIB)]})
    row = probe(fake).read(WORKERS[:2], per_process=True)
    assert row["alloc_in_use_bytes"] is None
    assert "alloc_in_use_bytes_w1" not in row
    assert row["alloc_held_bytes"] == 10 * MIB


def test_no_agent_anywhere_gives_no_figure() -> None:
    row = probe(FakeAgents({})).read(WORKERS, per_process=True)
    assert row == dict.fromkeys(agents.SUMS)


def test_a_late_answer_carries_the_last_figures_and_counts_as_missed() -> None:
    late = AgentError("the agent of pid 11 did not answer memory within 0.25 s")
    fake = FakeAgents({10: [snap(10, MIB, MIB)], 11: [snap(11, 3 * MIB, 4 * MIB), late]})
    reader = probe(fake)
    first = reader.read(WORKERS[:2], per_process=True)
    second = reader.read(WORKERS[:2], per_process=True)
    assert second == first
    w1 = reader.processes()[1]
    assert (w1.label, w1.agent, w1.answered, w1.failed, w1.error) == ("w1", True, 1, 1, str(late))


def test_each_process_keeps_its_latest_periodic_trim_figures() -> None:
    def trimmed(pid: int, count: int) -> MemorySnapshot:
        reading = {"every_s": 5.0, "count": count, "called": "malloc_trim(0)",
                   "total_ms": 2.5 * count, "max_ms": 3.0, "last_ms": 2.0}  # fmt: skip
        return replace(snap(pid, MIB, MIB), extra={"periodic_trim": reading})

    fake = FakeAgents({10: [trimmed(10, 1), trimmed(10, 2)], 11: [snap(11, MIB, MIB)]})
    reader = probe(fake)
    reader.read(WORKERS[:2], per_process=True)
    reader.read(WORKERS[:2], per_process=True)
    main, w1 = reader.processes()
    assert main.periodic_trim is not None and main.periodic_trim.count == 2
    assert (main.trims, w1.trims, w1.periodic_trim) == (2, 0, None)


def test_a_process_that_went_leaves_the_sums() -> None:
    fake = FakeAgents({10: [snap(10, MIB, MIB)], 11: [snap(11, 3 * MIB, 4 * MIB)]})
    reader = probe(fake)
    reader.read(WORKERS[:2], per_process=True)
    gone = reader.read(WORKERS[:1], per_process=True)  # w1 is no longer in the tree
    assert gone["alloc_held_bytes"] == MIB and "alloc_held_bytes_w1" not in gone
    assert reader.answering() == [("main", 10)]
    fake.script[10] = [None]  # main's socket refuses now: it has gone too
    assert reader.read(WORKERS[:1], per_process=True)["alloc_held_bytes"] is None


def test_processes_past_the_budget_are_not_asked_and_are_carried() -> None:
    now = [0.0]
    fake = FakeAgents({pid: [snap(pid, MIB, MIB)] for _, pid in WORKERS})
    reader = probe(fake, budget_s=0.5, clock=lambda: now[0])
    assert reader.read(WORKERS, per_process=True)["alloc_held_bytes"] == 3 * MIB
    fake.asked.clear()
    fake.on_ask = lambda: now.__setitem__(0, now[0] + 0.4)  # each answer takes 0.4 s
    row = reader.read(WORKERS, per_process=True)
    assert fake.asked == [10, 11]  # w2 was past the budget
    assert row["alloc_held_bytes"] == 3 * MIB  # w2's last figures, carried
    w2 = reader.processes()[2]
    assert (w2.failed, w2.error) == (1, "not asked: the probe's time for agents was spent")


def test_each_agent_gets_at_most_what_is_left_of_the_probes_budget() -> None:
    now = [0.0]
    fake = FakeAgents({pid: [snap(pid, MIB, MIB)] for _, pid in WORKERS})
    reader = agents.AgentProbe(fake, 1.0, timeout_s=0.6, clock=lambda: now[0])
    fake.on_ask = lambda: now.__setitem__(0, now[0] + 0.7)  # main's answer takes 0.7 s
    reader.read(WORKERS, per_process=True)
    assert fake.asked == [10, 11]
    assert fake.timeouts == [0.6, pytest.approx(0.3)]  # w1: the 0.3 s left, not its 0.6


def test_a_probe_asked_for_fresh_figures_asks_every_agent_for_them() -> None:
    fake = FakeAgents({pid: [snap(pid, MIB, MIB)] for _, pid in WORKERS})
    reader = probe(fake)
    reader.read(WORKERS, per_process=True)
    reader.read(WORKERS, per_process=True, fresh=True)
    assert fake.fresh == [False] * 3 + [True] * 3


def test_notes_for_no_agent_some_without_and_missed_probes() -> None:
    def proc(label: str, agent: bool, failed: int = 0, name: str = "python3") -> AgentProcess:
        return AgentProcess(
            label, {"main": 10, "w1": 11}[label], name, agent, answered=9 if agent else 0,
            failed=failed, error="late" if failed else None,
        )  # fmt: skip

    assert agents.agent_notes([], injected=False) == [
        "the agent was left out (SANDBOX_NO_AGENT=1): no allocator counters and no trim, RSS only"
    ]
    assert agents.agent_notes([proc("main", False, name="sh")], injected=True) == [
        "no process of the server had an agent (not Python, or started with python -I, -E or "
        "-S): no allocator counters and no trim, RSS only"
    ]
    some = [proc("main", False, name="sh"), proc("w1", True, 2)]
    assert agents.agent_notes(some, injected=True) == [
        "no agent in main (pid 10: sh): the allocator counters leave out its memory (RSS has it)",
        "the agent of w1 (pid 11: python3) missed 2 of 11 probes; its last figures were "
        "carried (first: late)",
    ]
    assert agents.agent_notes([proc("main", True)], injected=True) == []
    # A run that did not end ok: its agents missed probes because the server died or hung.
    assert agents.agent_notes([proc("main", True, 2)], injected=True, ok=False) == []


def state(rss_mib: int, held_mib: int | None) -> MemoryState:
    held = None if held_mib is None else held_mib * MIB
    return MemoryState("glibc", None, MIB, held, {"arena": 1}, None, rss_mib * MIB)


def trimmed(pid: int, before: tuple[int, int | None], after: tuple[int, int | None]) -> TrimAnswer:
    b, a = state(*before), state(*after)
    held = None if b.held_bytes is None or a.held_bytes is None else b.held_bytes - a.held_bytes
    released = Released(held, b.rss_bytes - a.rss_bytes)
    return TrimAnswer(pid, "malloc_trim(0)", 1, b, a, released, took_ms=3.0)


def test_trim_asks_every_process_and_sums_what_came_back() -> None:
    fake = FakeAgents(
        {},
        trims={
            10: trimmed(10, (50, 30), (45, 30)),
            11: trimmed(11, (80, 60), (60, 40)),
            12: AgentError("the agent of pid 12 did not answer trim within 30 s"),
        },
    )
    ticks = iter([1.0, 1.25])
    trim, notes = agents.trim_each(fake, WORKERS, clock=lambda: next(ticks))
    assert notes == [
        "trim of w2 (pid 12) failed: the agent of pid 12 did not answer trim within 30 s"
    ]
    assert trim is not None and trim.done
    assert [(p.label, p.answer.pid) for p in trim.processes] == [("main", 10), ("w1", 11)]
    assert trim.processes[1].answer.released.rss_bytes == 20 * MIB
    assert trim.processes[1].answer.before.raw == {"arena": 1}
    assert trim.called == "malloc_trim(0)" and trim.result is None  # two processes
    assert trim.before == {
        "rss_bytes": 130 * MIB, "held_bytes": 90 * MIB, "in_use_bytes": 2 * MIB, "processes": 2
    }  # fmt: skip
    assert (trim.released.rss_bytes, trim.released.held_bytes) == (25 * MIB, 20 * MIB)
    assert trim.took_ms == 250.0


def test_a_held_figure_missing_in_one_process_leaves_the_sum_unknown() -> None:
    fake = FakeAgents(
        {}, trims={10: trimmed(10, (50, None), (45, None)), 11: trimmed(11, (80, 60), (60, 40))}
    )
    trim, _ = agents.trim_each(fake, WORKERS[:2])
    assert trim is not None
    assert trim.before["held_bytes"] is None and trim.released.held_bytes is None
    assert trim.released.rss_bytes == 25 * MIB


def test_no_agent_to_ask_is_no_trim() -> None:
    assert agents.trim_each(FakeAgents({}), WORKERS) == (None, [])


def collected(
    pid: int, unreachable: int, freed_mib: int, py_freed_mib: int | None
) -> CollectResult:
    """A collection that freed `freed_mib` of malloc's in use (and RSS) and `py_freed_mib` of
    pymalloc's objects (None: pymalloc unread)."""
    before, after = state(100, 120), state(100 - freed_mib, 120 - freed_mib)
    before = replace(before, in_use_bytes=90 * MIB)
    after = replace(after, in_use_bytes=(90 - freed_mib) * MIB)
    py_before = None if py_freed_mib is None else 50 * MIB
    py_after = None if py_freed_mib is None else (50 - py_freed_mib) * MIB
    return CollectResult(
        pid=pid,
        unreachable=unreachable,
        counts_before=(600, 9, 2),
        generations=({"collections": 3, "collected": unreachable, "uncollectable": 0},),
        garbage=0,
        before=before,
        after=after,
        pymalloc_used=PymallocUsed(py_before, py_after),
        freed=Freed(
            in_use_bytes=freed_mib * MIB,
            held_bytes=freed_mib * MIB,
            rss_bytes=freed_mib * MIB,
            pymalloc_used_bytes=None if py_freed_mib is None else py_freed_mib * MIB,
        ),
        collect_ms=40.0,
        took_ms=41.0,
    )


def test_a_collection_asks_every_process_and_sums_what_it_freed() -> None:
    fake = FakeAgents(
        {},
        collections={
            10: collected(10, 1000, 30, 4),
            11: collected(11, 500, 10, 2),
            12: AgentError("the agent of pid 12 refused collect: unknown op 'collect'"),
        },
    )
    ticks = iter([1.0, 1.5])
    collection, notes = agents.collect_each(fake, WORKERS, clock=lambda: next(ticks))
    assert notes == [
        "garbage collection of w2 (pid 12) failed: the agent of pid 12 refused collect: "
        "unknown op 'collect'"
    ]
    assert collection is not None
    assert [(p.label, p.pid) for p in collection.processes] == [("main", 10), ("w1", 11)]
    assert collection.unreachable == 1500
    assert (collection.freed.in_use_bytes, collection.freed.pymalloc_used_bytes) == (
        40 * MIB,
        6 * MIB,
    )
    assert collection.freed_live_bytes == 46 * MIB
    assert collection.counts_before() == [1200, 18, 4]
    assert collection.processes[0].before.pymalloc_used_bytes == 50 * MIB
    assert collection.took_ms == 500.0


def test_a_pymalloc_figure_missing_in_one_process_leaves_its_sum_unknown() -> None:
    fake = FakeAgents({}, collections={10: collected(10, 9, 30, None), 11: collected(11, 9, 5, 1)})
    collection, _ = agents.collect_each(fake, WORKERS[:2])
    assert collection is not None
    assert collection.freed.pymalloc_used_bytes is None
    assert collection.freed_live_bytes == 35 * MIB  # malloc's alone


def test_no_agent_to_collect_in_is_no_collection() -> None:
    assert agents.collect_each(FakeAgents({}), WORKERS) == (None, [])


def test_the_wait_ends_once_every_python_process_answers() -> None:
    now = [0.0]
    hellos: dict[int, list[bool]] = {10: [False, True], 11: [False, False, True]}

    def hello(pid: int) -> object | None:
        answers = hellos[pid]
        return object() if (answers.pop(0) if len(answers) > 1 else answers[0]) else None

    def sleep(s: float) -> None:
        now[0] += s

    ready = agents.wait_for_agents(
        hello,
        lambda: [("main", 10), ("w1", 11), ("sh", 12)],
        5.0,
        is_python=lambda pid: pid != 12,  # 12 is not Python: not waited for
        clock=lambda: now[0],
        sleep=sleep,
    )
    assert ready == {10, 11}
    assert now[0] == pytest.approx(0.1)  # two waits of 50 ms


def test_the_wait_gives_up_after_its_timeout() -> None:
    now = [0.0]

    def late(pid: int) -> object | None:
        raise AgentError("busy")

    def sleep(s: float) -> None:
        now[0] += s

    ready = agents.wait_for_agents(
        late, lambda: [("main", 10)], 1.0, is_python=lambda pid: True, clock=lambda: now[0],
        sleep=sleep,
    )  # fmt: skip
    assert ready == set() and now[0] == pytest.approx(1.0)


def test_the_agent_is_left_out_only_when_asked() -> None:
    assert not agents.agent_disabled({})
    assert not agents.agent_disabled({"SANDBOX_NO_AGENT": "0"})
    assert agents.agent_disabled({"SANDBOX_NO_AGENT": "1"})


def test_an_agent_gets_half_the_probe_interval_to_answer_but_never_more_than_half_a_second() -> (
    None
):
    assert probe_timeout_s(1.0) == 0.5  # the default probe interval: its whole agent budget
    assert probe_timeout_s(0.4) == 0.2
    assert probe_timeout_s(5.0) == 0.5
    assert probe_timeout_s(0.05) == 0.05
