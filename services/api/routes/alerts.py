"""Alerts raised by the alerter: list (filters, cursor, newest first) and acknowledge.

The query string is validated into `AlertQuery` (a query-parameter model: unknown parameters and bad
cursors are 422 problems naming the parameter). Acknowledging needs a writer (`require_writer`); the
acknowledgement records the signed-in caller.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from aoc_api.auth import Principal, require_writer
from aoc_api.dependencies import AlertsDep
from aoc_api.openapi import STORE_RESPONSES
from aoc_common.events import utc_now
from aoc_common.rules import Alert, AlertPage, AlertQuery

router = APIRouter(prefix="/api", tags=["alerts"], responses=STORE_RESPONSES)
MAX_ID_LENGTH = 100


@router.get("/alerts", response_model=AlertPage, summary="Alerts, newest first")
async def list_alerts(query: Annotated[AlertQuery, Query()], store: AlertsDep) -> AlertPage:
    return await store.query_alerts(query)


@router.post(
    "/alerts/{alert_id}/acknowledge",
    response_model=Alert,
    summary="Acknowledge an alert (the first acknowledgement is kept)",
)
async def acknowledge_alert(
    alert_id: str,
    store: AlertsDep,
    principal: Annotated[Principal, Depends(require_writer)],
) -> Alert:
    alert = (
        await store.acknowledge_alert(alert_id, principal.name, utc_now())
        if len(alert_id) <= MAX_ID_LENGTH
        else None
    )
    if alert is None:
        raise HTTPException(404, "no alert with that id")
    return alert
