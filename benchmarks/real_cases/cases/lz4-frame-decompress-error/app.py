"""POST /decompress: decompresses an uploaded LZ4 frame with lz4.frame.decompress (as in
python-lz4#247, a faulty file uploaded again and again); a frame that fails to decompress is
answered 422. GET /sample gives a client a damaged frame (made here, with lz4, at start: a
compressed text whose block is overwritten in the middle; its header still declares
CONTENT_BYTES)."""

from __future__ import annotations

import lz4.frame
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

CONTENT_BYTES = 256 * 1024


def damaged_frame() -> bytes:
    text = b"".join(b"line %08d of the nightly report\n" % i for i in range(CONTENT_BYTES // 32))
    frame = bytearray(lz4.frame.compress(text[:CONTENT_BYTES], store_size=True))
    middle = len(frame) // 2
    frame[middle : middle + 64] = b"\xff" * 64
    return bytes(frame)


SAMPLE = damaged_frame()


async def decompress(request: Request) -> JSONResponse:
    try:
        data = lz4.frame.decompress(await request.body())
    except RuntimeError as e:
        return JSONResponse({"error": str(e)}, status_code=422)
    return JSONResponse({"bytes": len(data)})


async def sample(request: Request) -> Response:
    return Response(SAMPLE, media_type="application/octet-stream")


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/decompress", decompress, methods=["POST"]),
        Route("/sample", sample),
        Route("/health", health),
    ]
)
