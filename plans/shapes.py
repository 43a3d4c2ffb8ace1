"""Load models for any locustfile: constant rate, ramp, spike and soak, as a Locust load shape.

Add this file after your locustfile and pick a model:

    locust -f plans/locustfile.py,plans/shapes.py --tags tiny --headless -u 16 \\
        --load-model spike --rate 20 --spike-x 5 --spike-at 20 --spike-for 5 --duration 60

- rate:  --rate R for --duration D seconds (constant arrival rate);
- ramp:  --rate R to --to-rate R2, linearly over --duration D;
- spike: --rate R, with --spike-x X times R for --spike-for S seconds from --spike-at A;
- soak:  -u users as fast as they can for --duration D.

Locust is closed-loop, so a rate is made by pacing every user to --pace requests a second
(Locust's `constant_throughput`, applied here to every user class) and setting the number of users
each second to rate / pace (rounded). With --pace 0 (default) the pace is derived from -u, the most
users the model may start (see sandbox/load/models.py). -u, -r and -t are otherwise unused: the
model sets users and ends the test after --duration. The rate holds while the server answers
faster than 1 / pace seconds; past that the users fall behind, and Locust's statistics show it.
"""

from __future__ import annotations

import logging
from typing import Any

from locust import LoadTestShape, events
from locust.env import Environment
from locust.user.wait_time import constant_throughput

from sandbox.load.models import MODELS, LoadModel

logger = logging.getLogger(__name__)


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("load model (plans/shapes.py)")
    group.add_argument("--load-model", choices=MODELS[1:], default="rate", help="Load model.")
    group.add_argument("--rate", type=float, default=0.0, help="Requests/s (ramp: start).")
    group.add_argument("--to-rate", type=float, default=0.0, help="ramp: requests/s at the end.")
    group.add_argument("--duration", type=float, default=60.0, help="Seconds the model runs.")
    group.add_argument("--spike-x", type=float, default=5.0, help="spike: burst / baseline.")
    group.add_argument("--spike-at", type=float, default=0.0, help="spike: burst start, s.")
    group.add_argument("--spike-for", type=float, default=0.0, help="spike: burst length, s.")
    group.add_argument(
        "--pace", type=float, default=0.0, help="Requests/s per user (0: derived from -u)."
    )


def model_from(options: Any) -> LoadModel:
    return LoadModel(
        name=options.load_model,
        users=int(options.num_users or 1),
        rate=options.rate,
        to_rate=options.to_rate,
        duration_s=options.duration,
        spike_x=options.spike_x,
        spike_at_s=options.spike_at,
        spike_s=options.spike_for,
    )


@events.init.add_listener
def _pace_every_user(environment: Environment, **kwargs: Any) -> None:
    """Wrap each user class's wait_time: paced when --pace > 0, the class's own otherwise.

    --pace is read at every wait, because in distributed mode it reaches workers with the
    master's first spawn message, after this listener has run.
    """
    for user_class in environment.user_classes:
        own = user_class.wait_time

        def wait_time(user: Any, own: Any = own) -> float:
            pace = float(getattr(user.environment.parsed_options, "pace", 0.0) or 0.0)
            return float(constant_throughput(pace)(user)) if pace > 0 else float(own(user))

        user_class.wait_time = wait_time  # type: ignore[method-assign]


class LoadModelShape(LoadTestShape):
    """Users per second for the chosen model; stops the test when the model's duration is up."""

    def __init__(self) -> None:
        super().__init__()
        self.model: LoadModel | None = None
        self.pace = 0.0

    def _start(self) -> LoadModel:
        assert self.runner is not None
        options = self.runner.environment.parsed_options
        model = model_from(options)
        problems = model.problems()
        if problems:
            raise ValueError(f"plans/shapes.py: {'; '.join(problems)}")
        self.pace = float(options.pace) if options.pace > 0 else model.pace()
        options.pace = self.pace  # the users (and, with the next spawn message, workers) read it
        logger.info("load model: %s; %.4g requests/s per user", model.describe(), self.pace)
        return model

    def tick(self) -> tuple[int, float] | None:
        if self.model is None:
            self.model = self._start()
        users = self.model.users_at(self.get_run_time(), self.pace)
        if users is None:
            return None
        if not self.model.paced:  # soak: started at -r users a second, as without a model
            assert self.runner is not None
            return users, float(self.runner.environment.parsed_options.spawn_rate or users)
        # Start (or stop) the users of a step within about a second, not all at once: paced
        # users that start together stay in step and send in bursts.
        assert self.runner is not None
        return users, float(max(1, users, self.runner.user_count))
