"""Load for msgspec-to-builtins: POST ROWS labelled boxes as JSON (tag `rows`).

Imports only Locust and the standard library: run it as a subprocess, never import it.
"""

from __future__ import annotations

import json
import random

from locust import FastHttpUser, tag, task

ROWS = 1000


def row() -> dict[str, object]:
    x, y = random.uniform(0, 1000), random.uniform(0, 1000)
    box = [x, y, x + random.uniform(1, 50), y + random.uniform(1, 50)]
    return {"label": random.choice(("car", "person", "bike")), "box": box}


class RowsUser(FastHttpUser):
    @tag("rows")
    @task
    def rows(self) -> None:
        body = json.dumps([row() for _ in range(ROWS)])
        self.client.post("/rows", data=body, headers={"Content-Type": "application/json"})
