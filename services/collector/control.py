"""The collector's control endpoint: how the API (another process) asks for a run.

The API never imports the collector; it forwards `GET /api/fetch-audit-logs` and Graph change
notifications here over HTTP (COLLECTOR_URL). Two routes, both writes:
- `POST /fetch?hours=N`: collect a forced window now (after any run in progress) and answer with the
  counts and warnings per source;
- `POST /trigger` `{"sources": [...]}`: schedule a run in the background and answer 202 at once
  (Graph wants its notification acknowledged within seconds).
With COLLECTOR_CONTROL_TOKEN set, both require it as a bearer token. Bind it to loopback or a private
network: it is not meant to face users (the API does, with its own authentication).
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from aoc_collector.core import DEFAULT_FORCED_HOURS, MAX_FORCED_HOURS
from aoc_collector.live import Collector
from aoc_common.events import Source
from aoc_common.sources import SOURCES


class TriggerRequest(BaseModel):
    sources: list[Source] = list(SOURCES)


def create_control_app(collector: Collector, token: str | None = None) -> FastAPI:
    """`token`: the shared secret callers must present (None: no check, loopback use)."""

    def authorized(request: Request) -> None:
        if token is None:
            return
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(presented.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong collector control token")

    app = FastAPI(
        title="AOC collector control",
        dependencies=[Depends(authorized)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.post("/fetch")
    async def fetch(
        hours: Annotated[int, Query(ge=1, le=MAX_FORCED_HOURS)] = DEFAULT_FORCED_HOURS,
    ) -> dict[str, Any]:
        report = await collector.run(forced_hours=hours)
        return {"hours": hours, **report.summary()}

    @app.post("/trigger", status_code=202)
    async def trigger(body: TriggerRequest) -> JSONResponse:
        scheduled = collector.trigger(body.sources)
        return JSONResponse({"scheduled": scheduled}, status_code=202)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
