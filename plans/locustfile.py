"""Load for the stair-stepper: POST the tiny/small/medium/large bodies to /widgets.

The port of the original drill benchmark. Pick plans with `--tags` (or `--exclude-tags`):

    locust --tags medium --headless -u 16 -r 16 -t 5m

Drill's iteration semantics: with `--iterations N` (or LOCUST_ITERATIONS=N) the run sends exactly
N requests of every selected plan, N x (number of plans) in all, then stops by itself (headless:
Locust quits; web UI: the test stops and the UI stays up). N = 0, the default, runs until
stopped or until `--run-time`. A request whose ticket belongs to another plan still sends that
plan's body, so the per-plan counts are exact whatever task Locust happens to pick.

In distributed mode (`--master --expect-workers W` and W `--worker`s, or `--processes W`) the
N requests of each plan are shared out: worker i sends N // W, plus one if i < N % W, and tells
the master when it is done; the master stops the test (headless: quits) when all W have.
Without --expect-workers each worker sends all N.

Load models (constant rate, ramp, spike, soak): add plans/shapes.py, see its docstring.

This file imports only Locust and the standard library (Locust monkey-patches the process).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, constant, events, tag, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner
from locust.stats import CSV_STATS_INTERVAL_SEC

PLANS = ("tiny", "small", "medium", "large")
HERE = Path(__file__).resolve().parent
BODIES = {plan: (HERE / f"{plan}.json").read_bytes() for plan in PLANS}
HEADERS = {"Content-Type": "application/json"}

logger = logging.getLogger(__name__)


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--iterations",
        type=int,
        env_var="LOCUST_ITERATIONS",
        default=0,
        help="Send exactly this many requests of each selected plan (--tags), then stop. "
        "0 (default): run until stopped or --run-time. Shared out among workers.",
    )
    parser.add_argument(
        "--no-final-csv",
        action="store_true",
        default=False,
        help="When --iterations ends the run, quit at once instead of waiting for one more "
        "--csv write (Locust does not rewrite the CSVs on exit); for callers that read the "
        "final figures from --json-file.",
    )


class Drill:
    """Tickets per plan for one test run; the run ends when the last ticket's request is done."""

    def __init__(self) -> None:
        self.iterations = -1
        """Requests of each plan this process sends; -1: no limit."""
        self.tickets: dict[str, int] = {}
        self.total = 0
        self.completed = 0

    def reset(self, iterations: int, plans: list[str]) -> None:
        self.iterations = iterations
        self.tickets = dict.fromkeys(plans, iterations)
        self.total = iterations * len(plans)
        self.completed = 0

    def take(self, plan: str) -> str | None:
        """The plan to send next: `plan` if it has tickets left, else any plan that has; or None."""
        if self.iterations < 0:
            return plan
        if self.tickets.get(plan, 0) <= 0:
            plan = next((p for p, left in self.tickets.items() if left > 0), "")
            if not plan:
                return None
        self.tickets[plan] -= 1
        return plan

    def complete(self, environment: Environment) -> None:
        """Count a finished request; after the last one, stop the run (outside this greenlet)."""
        self.completed += 1
        if self.iterations >= 0 and self.completed == self.total:
            self.finished(environment)

    def finished(self, environment: Environment) -> None:
        """This process has sent its share: a worker tells the master, a lone process stops."""
        logger.info("--iterations: this process's %d requests sent; stopping", self.total)
        if isinstance(environment.runner, WorkerRunner):
            environment.runner.send_message(DONE_MESSAGE)
        else:
            gevent.spawn(_finish, environment)


DRILL = Drill()
DONE_MESSAGE = "drill_done"


def worker_share(iterations: int, index: int, workers: int) -> int:
    """Requests of each plan that worker `index` of `workers` sends."""
    if workers <= 0:
        return iterations
    return iterations // workers + (1 if index < iterations % workers else 0)


@events.init.add_listener
def _count_finished_workers(environment: Environment, **kwargs: Any) -> None:
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        return
    done: set[str] = set()

    def on_done(environment: Environment, msg: Any, **kw: Any) -> None:
        if msg.node_id in done:
            return
        done.add(msg.node_id)
        expected = int(getattr(environment.parsed_options, "expect_workers", 0) or 0)
        if len(done) >= max(expected, runner.worker_count):
            logger.info("--iterations reached on all %d workers; stopping", len(done))
            gevent.spawn(_finish, environment)

    runner.register_message(DONE_MESSAGE, on_done)
    environment.events.test_start.add_listener(lambda **kw: done.clear())


def _finish(environment: Environment) -> None:
    runner = environment.runner
    if runner is None:
        return
    options = environment.parsed_options
    if getattr(options, "csv_prefix", None):
        if getattr(options, "no_final_csv", False):
            logger.info("--no-final-csv: quitting without waiting for the next CSV write")
        else:
            # Locust rewrites the --csv files every CSV_STATS_INTERVAL_SEC and does not write
            # them again on exit (locustio/locust#2299): wait for one more write so they hold
            # every request.
            gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.5)
    if getattr(options, "headless", False) and not isinstance(runner, WorkerRunner):
        runner.quit()  # like --run-time running out: writes the CSVs and exits
    else:
        runner.stop()  # keep the web UI (or the worker) up for the next run


def selected_plans(user_class: type[FastHttpUser]) -> list[str]:
    """The plans whose tasks survived Locust's --tags/--exclude-tags filtering (in PLANS order).

    Locust filters once per run, before test_start, by rewriting `user_class.tasks`.
    """
    tags: set[str] = set()
    for t in user_class.tasks:
        tags |= getattr(t, "locust_tag_set", set())
    return [plan for plan in PLANS if plan in tags]


@events.test_start.add_listener
def _on_test_start(environment: Environment, **kwargs: Any) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        return  # the master sends no requests; workers count for themselves
    options = environment.parsed_options
    iterations = int(getattr(options, "iterations", 0) or 0)
    plans = selected_plans(WidgetUser)
    if iterations <= 0:
        DRILL.reset(-1, plans)
        return
    if isinstance(runner, WorkerRunner):
        workers = int(getattr(options, "expect_workers", 0) or 0)
        iterations = worker_share(iterations, runner.worker_index, workers)
    DRILL.reset(iterations, plans)
    logger.info(
        "--iterations: sending %d requests (%s)",
        DRILL.total,
        ", ".join(f"{iterations} {p}" for p in plans),
    )
    if DRILL.total == 0:  # more workers than requests: this one has nothing to send
        DRILL.finished(environment)


class WidgetUser(FastHttpUser):
    """One client of the stair-stepper: POSTs a body as soon as the previous answer arrives."""

    wait_time = constant(0)
    # Uvicorn holds each request until its sleep ends; be patient with 2 MB bodies under load.
    network_timeout = 300.0
    connection_timeout = 60.0

    def post_widget(self, plan: str) -> None:
        ticket = DRILL.take(plan)
        if ticket is None:
            raise StopUser()
        try:
            with self.client.post(
                "/widgets",
                data=BODIES[ticket],
                headers=HEADERS,
                name=f"/widgets [{ticket}]",
                catch_response=True,
            ) as response:
                if response.status_code != 201:
                    text = (response.text or "")[:200]
                    response.failure(f"expected 201, got {response.status_code}: {text}")
        finally:
            DRILL.complete(self.environment)

    @tag("tiny")
    @task
    def tiny(self) -> None:
        self.post_widget("tiny")

    @tag("small")
    @task
    def small(self) -> None:
        self.post_widget("small")

    @tag("medium")
    @task
    def medium(self) -> None:
        self.post_widget("medium")

    @tag("large")
    @task
    def large(self) -> None:
        self.post_widget("large")
