"""Load for sqlalchemy-compiled-cache: GET /items with one of SHAPES field lists (tag `query`),
each 20 of the 60 measures in an order of its own; more shapes than the cache's 500, so it
fills within the first batch and then evicts.

Imports only Locust and the standard library: run it as a subprocess, never import it.
"""

from __future__ import annotations

import random

from locust import FastHttpUser, tag, task

SHAPES = 1500
FIELDS = [f"m{i:02d}" for i in range(60)]


def fields(shape: int) -> str:
    return ",".join(random.Random(shape).sample(FIELDS, 20))


class QueryUser(FastHttpUser):
    @tag("query")
    @task
    def query(self) -> None:
        shape = random.randrange(SHAPES)
        self.client.get(f"/items?fields={fields(shape)}", name="/items?fields=[shape]")
