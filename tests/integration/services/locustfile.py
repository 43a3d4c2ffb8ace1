"""Load for the test services: GET /work, as fast as the load model lets it.

This file imports only Locust and the standard library (Locust monkey-patches the process):
run it as a subprocess, never import it from a test.
"""

from __future__ import annotations

from locust import FastHttpUser, task


class WorkUser(FastHttpUser):
    """One client asking for /work."""

    @task
    def work(self) -> None:
        self.client.get("/work")
