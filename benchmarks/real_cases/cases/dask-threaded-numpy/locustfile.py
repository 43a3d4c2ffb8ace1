"""Load for dask-threaded-numpy: POST /compute with a random size from 1,500 to 3,000 (tag
`compute`), so the chunks' shapes and the arenas they land in vary.

Imports only Locust and the standard library: run it as a subprocess, never import it.
"""

from __future__ import annotations

import random

from locust import FastHttpUser, tag, task


class ComputeUser(FastHttpUser):
    @tag("compute")
    @task
    def compute(self) -> None:
        n = random.randrange(1500, 3001, 250)
        self.client.post(f"/compute?n={n}", name="/compute?n=[n]")
