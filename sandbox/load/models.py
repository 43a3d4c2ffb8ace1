"""Load models: the target request rate over time, and how many paced users produce it.

Standard library only: `plans/shapes.py` imports this module inside the Locust process, and the
harness imports it to record and check what was asked for.

Locust is a closed-loop driver (each user sends its next request after the previous answer), so
a target *rate* is made with Locust's own mechanisms: every user is paced to `pace` requests a
second (`constant_throughput`), and a load shape sets the number of users each second to
rate / pace, rounded to the nearest whole user. The achieved rate matches the target while the
server answers each request in less than 1 / pace seconds; past that, the users cannot keep up
and the achieved rate falls short (the result shows it: it records Locust's per-second counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

ModelName = Literal["iterations", "rate", "ramp", "spike", "soak"]
MODELS: tuple[ModelName, ...] = ("iterations", "rate", "ramp", "spike", "soak")
PARAMETERS: dict[ModelName, tuple[str, ...]] = {
    "iterations": (),
    "rate": ("rate", "duration_s"),
    "ramp": ("rate", "to_rate", "duration_s"),
    "spike": ("rate", "duration_s", "spike_x", "spike_at_s", "spike_s"),
    "soak": ("duration_s",),
}
"""The fields (and settings of the same name) each model reads; the others keep their defaults."""


@dataclass(frozen=True)
class LoadModel:
    """One batch's load. Rates are requests per second; times are seconds from the batch start."""

    name: ModelName = "iterations"
    users: int = 16
    """Concurrent users (iterations, soak); the most users a paced model may start."""
    rate: float = 0.0
    """rate: the target; ramp: the start; spike: the baseline."""
    to_rate: float = 0.0
    """ramp: the rate at the end."""
    duration_s: float = 0.0
    """Every model but iterations: the batch's length."""
    spike_x: float = 5.0
    """spike: the burst is this many times the baseline."""
    spike_at_s: float = 0.0
    """spike: when the burst starts."""
    spike_s: float = 0.0
    """spike: how long the burst lasts."""

    @property
    def paced(self) -> bool:
        return self.name in ("rate", "ramp", "spike")

    @property
    def peak_rate(self) -> float:
        if self.name == "ramp":
            return max(self.rate, self.to_rate)
        if self.name == "spike":
            return self.rate * self.spike_x
        return self.rate

    def problems(self) -> list[str]:
        """What is missing or inconsistent, as `key: reason` strings (empty when valid)."""
        out = []
        if self.name not in MODELS:
            out.append(f"load: one of {', '.join(MODELS)}")
        if self.name != "iterations" and self.duration_s <= 0:
            out.append(f"duration_s: the {self.name} model needs a duration > 0")
        if self.paced and self.rate <= 0 and not (self.name == "ramp" and self.to_rate > 0):
            out.append(f"rate: the {self.name} model needs a rate > 0 (requests/s)")
        if self.name == "ramp" and self.to_rate <= 0:
            out.append("to_rate: the ramp model needs the rate to end at (> 0)")
        if self.name == "spike":
            if self.spike_x <= 1:
                out.append("spike_x: the burst must be more than 1 times the baseline")
            if self.spike_s <= 0:
                out.append("spike_s: the burst needs a length > 0")
            if self.spike_at_s + self.spike_s > self.duration_s:
                out.append("spike_at_s: the burst must end within duration_s")
            if self.users < self.spike_x:
                out.append(
                    f"users: the spike model needs at least spike_x ({self.spike_x:g}) users, "
                    "one for the baseline and spike_x for the burst"
                )
        return out

    def pace(self) -> float:
        """Requests per second per user, chosen so the model's rates need whole users.

        rate: all `users` at rate/users each. spike: the baseline takes users // spike_x users,
        the burst spike_x times as many, so both rates are exact. ramp: the peak rate on all
        users (the ramp moves in steps of one user's pace).
        """
        if not self.paced:
            return 0.0
        if self.name == "spike":
            base_users = max(1, math.floor(self.users / self.spike_x))
            return self.rate / base_users
        return self.peak_rate / self.users

    def rate_at(self, t: float) -> float | None:
        """The target rate `t` seconds into the batch; None once the batch is over.

        For soak (unpaced), 0.0 while it runs: it has no target rate.
        """
        if self.name == "iterations":
            return 0.0
        if t >= self.duration_s:
            return None
        if self.name == "ramp":
            return self.rate + (self.to_rate - self.rate) * t / self.duration_s
        if self.name == "spike" and self.spike_at_s <= t < self.spike_at_s + self.spike_s:
            return self.rate * self.spike_x
        if self.name == "soak":
            return 0.0
        return self.rate

    def users_at(self, t: float, pace: float) -> int | None:
        """Paced users that make rate_at(t); `users` for unpaced models; None when over."""
        rate = self.rate_at(t)
        if rate is None:
            return None
        if not self.paced or pace <= 0:
            return self.users
        return max(1, round(rate / pace))

    def expected_requests(self, start_s: float, end_s: float, step_s: float = 0.05) -> float:
        """Requests the target rate asks for between two times (numerical integral)."""
        total, t = 0.0, start_s
        while t < end_s:
            dt = min(step_s, end_s - t)
            total += (self.rate_at(t + dt / 2) or 0.0) * dt
            t += dt
        return total

    def parameters(self) -> dict[str, float]:
        """The settings this model reads, by name (`rate`, `duration_s`, ...), with their values."""
        return {name: getattr(self, name) for name in PARAMETERS[self.name]}

    def describe(self) -> str:
        if self.name == "iterations":
            return f"iterations ({self.users} users)"
        if self.name == "soak":
            return f"soak ({self.users} users, {self.duration_s:g} s)"
        if self.name == "rate":
            return f"rate {self.rate:g}/s for {self.duration_s:g} s"
        if self.name == "ramp":
            return f"ramp {self.rate:g}→{self.to_rate:g}/s over {self.duration_s:g} s"
        return (
            f"spike {self.rate:g}/s, ×{self.spike_x:g} for {self.spike_s:g} s at "
            f"{self.spike_at_s:g} s, {self.duration_s:g} s"
        )
