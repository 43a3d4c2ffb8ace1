"""Load for msgspec-json-struct: POST a JSON list of ORDERS orders (tag `orders`).

Imports only Locust and the standard library: run it as a subprocess, never import it.
"""

from __future__ import annotations

import json
import random
import string

from locust import FastHttpUser, tag, task

ORDERS = 400


def order(i: int) -> dict[str, object]:
    return {
        "id": i,
        "customer": "".join(random.choices(string.ascii_letters, k=24)),
        "sku": "".join(random.choices(string.ascii_uppercase + string.digits, k=16)),
        "quantity": random.randint(1, 9),
        "price": round(random.uniform(1, 500), 2),
    }


class OrdersUser(FastHttpUser):
    @tag("orders")
    @task
    def orders(self) -> None:
        body = json.dumps([order(i) for i in range(ORDERS)])
        self.client.post("/orders", data=body, headers={"Content-Type": "application/json"})
