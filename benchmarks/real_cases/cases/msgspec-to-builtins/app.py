"""POST /rows: detected boxes as JSON, decoded into msgspec Structs (Box is array_like, as in
msgspec#1175), turned back into builtins with msgspec.to_builtins and answered as JSON."""

from __future__ import annotations

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


class Box(msgspec.Struct, array_like=True):
    x1: float
    y1: float
    x2: float
    y2: float


class Row(msgspec.Struct):
    label: str
    box: Box


DECODER = msgspec.json.Decoder(list[Row])


async def rows(request: Request) -> Response:
    decoded = DECODER.decode(await request.body())
    plain = msgspec.to_builtins(decoded)
    return Response(msgspec.json.encode({"rows": len(plain)}), media_type="application/json")


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/rows", rows, methods=["POST"]), Route("/health", health)])
