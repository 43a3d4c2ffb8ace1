"""GET /items?fields=...: selects the fields a client asks for (any of COLUMNS, in any
combination, as a reporting API lets its clients choose) from an in-memory SQLite table with
SQLAlchemy Core; each distinct combination is a statement the engine compiles once and keeps in
its compiled cache (an LRU of query_cache_size, 500 by default)."""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, create_engine, select
from sqlalchemy.pool import StaticPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

COLUMNS = 60
metadata = MetaData()
measures = Table(
    "measures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("site", String(32)),
    *(Column(f"m{i:02d}", Float) for i in range(COLUMNS)),
)
engine = create_engine("sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool)
metadata.create_all(engine)
with engine.begin() as conn:
    rows = [
        {"site": f"site{n % 7}", **{f"m{i:02d}": n * 0.5 + i for i in range(COLUMNS)}}
        for n in range(50)
    ]
    conn.execute(measures.insert(), rows)


async def items(request: Request) -> JSONResponse:
    names = [n for n in request.query_params.get("fields", "").split(",") if n in measures.c]
    columns = [measures.c[n].label(f"{n}_value") for n in names] or [measures.c.id]
    query = (
        select(measures.c.id, *columns).where(measures.c.site == "site3").order_by(measures.c.id)
    )
    with engine.connect() as conn:
        result = [list(r) for r in conn.execute(query)]
    return JSONResponse({"rows": len(result), "fields": len(names)})


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/items", items), Route("/health", health)])
