"""Load for the cache service: PUT items (tag `put`) and GET them back (tag `get`).

    locust -f examples/cache_service/locustfile.py --tags put get --headless -u 8 -t 30s \\
        --host http://127.0.0.1:8000

Keys are drawn from a key space of CACHE_KEYS (default 20000) keys, so the cache fills, then
items are rewritten in place. A GET of a key not stored yet is a 404, which is not a failure.

This file imports only Locust and the standard library (Locust monkey-patches the process):
run it as a subprocess, never import it from a test.
"""

from __future__ import annotations

import json
import os
import random
import string

from locust import FastHttpUser, tag, task

KEYS = int(os.environ.get("CACHE_KEYS", "20000"))
HEADERS = {"Content-Type": "application/json"}


def random_key() -> str:
    return f"k{random.randrange(KEYS)}"


def random_body() -> str:
    name = "".join(random.choices(string.ascii_letters, k=12))
    values = [random.uniform(-1e6, 1e6) for _ in range(random.randint(200, 2000))]
    return json.dumps({"name": name, "values": values})


class CacheUser(FastHttpUser):
    """One client that stores and fetches items as fast as the server answers."""

    @tag("put")
    @task
    def put(self) -> None:
        self.client.post(
            f"/items/{random_key()}", data=random_body(), headers=HEADERS, name="/items/[key]"
        )

    @tag("get")
    @task
    def get(self) -> None:
        with self.client.get(
            f"/items/{random_key()}", name="/items/[key]", catch_response=True
        ) as response:
            if response.status_code in (200, 404):  # 404: not stored yet (or evicted)
                response.success()
            else:
                response.failure(f"HTTP {response.status_code}")
