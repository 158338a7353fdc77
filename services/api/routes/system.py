"""Operational endpoints: health (for load balancers and humans), version, Prometheus metrics, and the
API's own documentation (OpenAPI document and Swagger UI).

`/health` tells the truth about what the API can do: `down` (503) when the store cannot be read,
`degraded` (200) when it can be read but refuses writes (a read-only file, directory or database
user) or the message log is unreachable, `ok` otherwise. Writability is proven by writing one small
state record, the way a tag or a comment would be written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from aoc_api.auth import require_docs_reader, require_metrics_reader
from aoc_api.dependencies import MessageLogDep, StoreDep
from aoc_api.problems import store_refuses_writes
from aoc_common import __version__
from aoc_common.events import SCHEMA_VERSION, utc_now
from aoc_common.metrics import render_latest

router = APIRouter()
HEALTH_TIMEOUT_S = 3.0
WRITE_PROBE_KEY = "api.health.write_probe"


class EngineCheck(BaseModel):
    engine: str
    ok: bool
    writable: bool | None = None
    error: str | None = None


class HealthReport(BaseModel):
    status: Literal["ok", "degraded", "down"]
    checks: dict[str, EngineCheck]


async def _probe(probe: Callable[[], Awaitable[Any]]) -> str | None:
    """None when the probe succeeds in time, else what went wrong (any failure is a health
    answer, not an API error)."""
    try:
        await asyncio.wait_for(probe(), timeout=HEALTH_TIMEOUT_S)
        return None
    except TimeoutError:
        return f"no answer within {HEALTH_TIMEOUT_S:g} s"
    except Exception as error:
        return f"{type(error).__name__}: {error}"[:300]


async def _store_check(store: StoreDep) -> EngineCheck:
    problem = await _probe(store.ping)
    if problem is not None:
        return EngineCheck(engine=store.engine, ok=False, error=problem)
    refused = await _probe(
        lambda: store.put_state(WRITE_PROBE_KEY, {"checked_at": utc_now().isoformat()})
    )
    if refused is None:
        return EngineCheck(engine=store.engine, ok=True, writable=True)
    reason = "refuses writes (read-only)" if store_refuses_writes(Exception(refused)) else refused
    return EngineCheck(engine=store.engine, ok=True, writable=False, error=reason)


@router.get(
    "/health",
    summary="Store (read and write) and message log; 503 when the store cannot be read",
    response_model=HealthReport,
    response_model_exclude_none=True,
    responses={503: {"description": "The store cannot be read (status `down`)"}},
)
async def health(store: StoreDep, message_log: MessageLogDep) -> JSONResponse:
    checks = {"store": await _store_check(store)}
    if message_log is not None:
        problem = await _probe(message_log.ping)
        checks["message_log"] = EngineCheck(
            engine=message_log.engine, ok=problem is None, error=problem
        )
    store_check = checks["store"]
    healthy = all(c.ok for c in checks.values()) and store_check.writable is not False
    status = "ok" if healthy else ("degraded" if store_check.ok else "down")
    report = HealthReport(status=status, checks=checks)
    return JSONResponse(
        report.model_dump(mode="json", exclude_none=True),
        status_code=200 if store_check.ok else 503,
    )


@router.get("/api/version", summary="Product and event schema versions")
async def version() -> dict[str, Any]:
    return {"name": "aoc", "version": __version__, "schema_version": SCHEMA_VERSION}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    include_in_schema=False,
    dependencies=[Depends(require_metrics_reader)],
)
async def metrics() -> Response:
    body, content_type = render_latest()
    return Response(body, media_type=content_type)


SWAGGER_UI_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>AOC API — OpenAPI</title>
  <link rel="stylesheet" href="/vendor/swagger-ui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/vendor/swagger-ui/swagger-ui-bundle.js"></script>
  <script src="/docs.js"></script>
</body>
</html>
"""

DocsReader = Annotated[None, Depends(require_docs_reader)]


@router.get("/openapi.json", include_in_schema=False)
async def openapi_document(request: Request, _: DocsReader) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", include_in_schema=False)
async def docs(_: DocsReader) -> HTMLResponse:
    """Swagger UI served from the vendored files: FastAPI's default page loads it from a CDN,
    which the UI's content security policy (and an offline install) would block."""
    return HTMLResponse(SWAGGER_UI_PAGE)
