"""POST /compute?n=N: a dask array of random NumPy chunks, reduced on dask's threaded scheduler
with WORKERS threads (dask#3530's setting: NumPy arrays made and freed in a thread pool), run in
a worker thread so the event loop stays free; answers the result."""

from __future__ import annotations

import dask
import dask.array as da
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

WORKERS = 8
CHUNK = 250


def compute(n: int) -> float:
    x = da.random.random((n, n), chunks=(CHUNK, CHUNK))
    y = (x + x.T) * 2 - x.mean(axis=0)
    with dask.config.set(scheduler="threads", num_workers=WORKERS):
        return float(y.std().compute())


async def compute_route(request: Request) -> JSONResponse:
    n = min(4000, max(CHUNK, int(request.query_params.get("n", "2000"))))
    return JSONResponse({"n": n, "std": await run_in_threadpool(compute, n)})


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[Route("/compute", compute_route, methods=["POST"]), Route("/health", health)]
)
