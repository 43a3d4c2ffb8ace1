"""Load for ujson-dump-write-error: POST RECORDS records to export (tag `export`); the service
answers 507 (its spool is full), which is the expected answer here, not a failure.

Imports only Locust and the standard library: run it as a subprocess, never import it.
"""

from __future__ import annotations

import json
import random
import string

from locust import FastHttpUser, tag, task

RECORDS = 300
"""About 30 KB of JSON a document."""


def record(i: int) -> dict[str, object]:
    return {"id": i, "name": "".join(random.choices(string.ascii_letters, k=40)), "n": i * 7}


class ExportUser(FastHttpUser):
    @tag("export")
    @task
    def export(self) -> None:
        body = json.dumps([record(i) for i in range(RECORDS)])
        with self.client.post(
            "/export", data=body, headers={"Content-Type": "application/json"}, catch_response=True
        ) as response:
            if response.status_code in (200, 507):
                response.success()
            else:
                response.failure(f"HTTP {response.status_code}")
