"""POST /report: builds its answer in an addict Dict by attribute access (`report.data.lines =
...`, `report.meta.count = ...`: addict#86's `a.x.y = 1`), with the uploaded document's lines
held in it, and answers a summary of it."""

from __future__ import annotations

from addict import Dict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


async def report(request: Request) -> JSONResponse:
    text = (await request.body()).decode()
    answer = Dict()
    answer.data.lines = text.splitlines()
    answer.data.source = text
    answer.meta.count = len(answer.data.lines)
    answer.meta.longest = max((len(line) for line in answer.data.lines), default=0)
    return JSONResponse(answer.meta.to_dict())


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/report", report, methods=["POST"]), Route("/health", health)])
