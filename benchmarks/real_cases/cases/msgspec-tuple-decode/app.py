"""POST /samples: msgpack records, each with a tuple of 17 readings (msgspec#379's shape: a
tuple[int, ...] field longer than 16), decoded into Structs; answers the mean reading."""

from __future__ import annotations

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


class Sample(msgspec.Struct):
    sensor: int
    readings: tuple[int, ...]


DECODER = msgspec.msgpack.Decoder(list[Sample])


async def samples(request: Request) -> JSONResponse:
    decoded = DECODER.decode(await request.body())
    total = sum(sum(s.readings) for s in decoded)
    count = sum(len(s.readings) for s in decoded)
    return JSONResponse({"samples": len(decoded), "mean": total / max(1, count)})


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/samples", samples, methods=["POST"]), Route("/health", health)])
