"""POST /export: writes the posted records as JSON with ujson.dump to a spool that has a quota
(an export to a full disk, as in CVE-2026-44660's failed write); over the quota the write
raises and the service answers 507."""

from __future__ import annotations

import json

import ujson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

QUOTA_BYTES = 16 * 1024
"""What the spool accepts; the documents sent are larger, so every write fails."""


class QuotaExceeded(OSError):
    pass


class Spool:
    """A writer with a quota: the export's destination."""

    def __init__(self, quota: int) -> None:
        self.left = quota

    def write(self, text: str) -> int:
        if len(text) > self.left:
            raise QuotaExceeded("spool quota exceeded")
        self.left -= len(text)
        return len(text)


async def export(request: Request) -> JSONResponse:
    records = json.loads(await request.body())
    try:
        ujson.dump({"records": records}, Spool(QUOTA_BYTES))
    except QuotaExceeded:
        return JSONResponse({"exported": 0, "error": "quota"}, status_code=507)
    return JSONResponse({"exported": len(records)})


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/export", export, methods=["POST"]), Route("/health", health)])
