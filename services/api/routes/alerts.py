"""Alerts raised by the alerter: list (filters, cursor, newest first) and acknowledge.

The acknowledge endpoint carries `WRITE_DEPENDENCIES`, where the API's writer guard
(`Depends(require_writer)`, contracts.md §4) is attached; this module does no authentication itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError

from aoc_api.dependencies import get_store
from aoc_common.event_store.base import EventStore
from aoc_common.events import utc_now
from aoc_common.query import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Cursor, InvalidCursor
from aoc_common.rules import Alert, AlertPage, AlertQuery, AlertStatus, Severity

router = APIRouter(prefix="/api", tags=["alerts"])
WRITE_DEPENDENCIES: list[Any] = []
ALERT_QUERY_PARAMETERS = frozenset({"status", "severity", "rule_id", "page_size", "cursor"})
MAX_ID_LENGTH = 100


def _invalid(parameter: str, message: str, value: Any = None) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", parameter), "msg": message, "type": "value_error", "input": value}]
    )


async def acting_user(request: Request) -> str:
    """Who acknowledges: the principal an authentication dependency put on the request, if any.

    When the API's auth lands, this becomes the `name` of `Depends(require_writer)`'s principal.
    """
    principal = getattr(request.state, "principal", None)
    name = getattr(principal, "name", None)
    return name if isinstance(name, str) and name else "anonymous"


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
    dependencies=WRITE_DEPENDENCIES,
    summary="Acknowledge an alert (the first acknowledgement is kept)",
)
async def acknowledge_alert(
    alert_id: str,
    store: Annotated[EventStore, Depends(get_store)],
    by: Annotated[str, Depends(acting_user)],
) -> Alert:
    alert = (
        await store.acknowledge_alert(alert_id, by, utc_now())
        if len(alert_id) <= MAX_ID_LENGTH
        else None
    )
    if alert is None:
        raise HTTPException(404, "no alert with that id")
    return alert
