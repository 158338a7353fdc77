"""Operational endpoints: health (for load balancers and humans), version, Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import HTMLResponse, JSONResponse

from aoc_api.dependencies import get_message_log, get_store
from aoc_common import __version__
from aoc_common.event_store.base import EventStore
from aoc_common.events import SCHEMA_VERSION
from aoc_common.message_log.base import MessageLog
from aoc_common.metrics import render_latest

router = APIRouter()
HEALTH_TIMEOUT_S = 3.0


async def _check(name: str, engine: str, probe: Any) -> dict[str, Any]:
    try:
        await asyncio.wait_for(probe(), timeout=HEALTH_TIMEOUT_S)
        return {"name": name, "engine": engine, "ok": True}
    except Exception as error:  # any failure is a health answer, not an API error
        return {
            "name": name,
            "engine": engine,
            "ok": False,
            "error": f"{type(error).__name__}: {error}"[:300],
        }


@router.get("/health", summary="Store and message log reachability; 503 when the store is down")
async def health(
    store: Annotated[EventStore, Depends(get_store)],
    message_log: Annotated[MessageLog | None, Depends(get_message_log)],
) -> JSONResponse:
    checks = [await _check("store", store.engine, store.ping)]
    if message_log is not None:
        checks.append(await _check("message_log", message_log.engine, message_log.ping))
    store_ok = checks[0]["ok"]
    all_ok = all(c["ok"] for c in checks)
    status = "ok" if all_ok else ("degraded" if store_ok else "down")
    return JSONResponse(
        {"status": status, "checks": {c.pop("name"): c for c in checks}},
        status_code=200 if store_ok else 503,
    )


@router.get("/api/version", summary="Product and event schema versions")
async def version() -> dict[str, Any]:
    return {"name": "aoc", "version": __version__, "schema_version": SCHEMA_VERSION}


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
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


@router.get("/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    """Swagger UI served from the vendored files: FastAPI's default page loads it from a CDN,
    which the UI's content security policy (and an offline install) would block."""
    return HTMLResponse(SWAGGER_UI_PAGE)
