"""Load for addict-parent-cycles: POST a text document of LINES lines (tag `report`).

Imports only Locust and the standard library: run it as a subprocess, never import it.
"""

from __future__ import annotations

import random
import string

from locust import FastHttpUser, tag, task

LINES = 2000


def line() -> str:
    return "".join(random.choices(string.ascii_letters + " ", k=random.randint(40, 120)))


class ReportUser(FastHttpUser):
    @tag("report")
    @task
    def report(self) -> None:
        body = "\n".join(line() for _ in range(LINES))
        self.client.post("/report", data=body, headers={"Content-Type": "text/plain"})
