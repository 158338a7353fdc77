"""Alerts raised by the alerter: list (filters, cursor, newest first) and acknowledge.

Acknowledging needs a writer (`require_writer`); the acknowledgement records the signed-in caller.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError

from aoc_api.auth import Principal, require_writer
from aoc_api.dependencies import get_store
from aoc_common.event_store.base import EventStore
from aoc_common.events import utc_now
from aoc_common.query import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Cursor, InvalidCursor
from aoc_common.rules import Alert, AlertPage, AlertQuery, AlertStatus, Severity

router = APIRouter(prefix="/api", tags=["alerts"])
ALERT_QUERY_PARAMETERS = frozenset({"status", "severity", "rule_id", "page_size", "cursor"})
MAX_ID_LENGTH = 100


def _invalid(parameter: str, message: str, value: Any = None) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", parameter), "msg": message, "type": "value_error", "input": value}]
    )


@router.get("/alerts", response_model=AlertPage, summary="Alerts, newest first")
async def list_alerts(
    request: Request,
    store: Annotated[EventStore, Depends(get_store)],
    status: Annotated[AlertStatus | None, Query(description="open | acknowledged")] = None,
    severity: Annotated[
        Severity | None, Query(description="low | medium | high | critical")
    ] = None,
    rule_id: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> AlertPage:
    unknown = sorted(set(request.query_params) - ALERT_QUERY_PARAMETERS)
    if unknown:
        raise _invalid(unknown[0], f"unknown parameter; allowed: {sorted(ALERT_QUERY_PARAMETERS)}")
    try:
        position = Cursor.decode(cursor) if cursor else None
    except InvalidCursor as error:
        raise _invalid("cursor", str(error), cursor) from None
    query = AlertQuery(
        status=status, severity=severity, rule_id=rule_id, page_size=page_size, cursor=position
    )
    return await store.query_alerts(query)


@router.post(
    "/alerts/{alert_id}/acknowledge",
    response_model=Alert,
    summary="Acknowledge an alert (the first acknowledgement is kept)",
)
async def acknowledge_alert(
    alert_id: str,
    store: Annotated[EventStore, Depends(get_store)],
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
