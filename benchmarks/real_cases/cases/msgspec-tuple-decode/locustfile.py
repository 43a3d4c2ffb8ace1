"""Load for msgspec-tuple-decode: POST SAMPLES msgpack records of 17 readings (tag `samples`).

msgpack is written by hand here (arrays, maps, short strings, unsigned ints): this file imports
only Locust and the standard library. Run it as a subprocess, never import it.
"""

from __future__ import annotations

import random
import struct

from locust import FastHttpUser, tag, task

SAMPLES = 200
READINGS = 17


def uint(n: int) -> bytes:
    if n < 128:
        return bytes([n])
    if n < 1 << 16:
        return b"\xcd" + struct.pack(">H", n)
    return b"\xce" + struct.pack(">I", n)


def short_str(s: str) -> bytes:
    data = s.encode()
    return bytes([0xA0 | len(data)]) + data


def array_header(n: int) -> bytes:
    return bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)


def sample(sensor: int) -> bytes:
    readings = [random.randrange(1000, 1_000_000) for _ in range(READINGS)]
    body = b"\x82" + short_str("sensor") + uint(sensor) + short_str("readings")
    return body + array_header(READINGS) + b"".join(uint(r) for r in readings)


class SamplesUser(FastHttpUser):
    @tag("samples")
    @task
    def samples(self) -> None:
        body = array_header(SAMPLES) + b"".join(sample(i) for i in range(SAMPLES))
        self.client.post("/samples", data=body, headers={"Content-Type": "application/msgpack"})
