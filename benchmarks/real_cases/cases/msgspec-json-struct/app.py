"""POST /orders: a JSON list of orders, decoded into msgspec Structs (as in msgspec#311), and
answered with their count and total. GET /health answers once the server is up."""

from __future__ import annotations

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


class Order(msgspec.Struct):
    id: int
    customer: str
    sku: str
    quantity: int
    price: float


DECODER = msgspec.json.Decoder(list[Order])


async def orders(request: Request) -> JSONResponse:
    decoded = DECODER.decode(await request.body())
    total = sum(o.quantity * o.price for o in decoded)
    return JSONResponse({"orders": len(decoded), "total": round(total, 2)})


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/orders", orders, methods=["POST"]), Route("/health", health)])
