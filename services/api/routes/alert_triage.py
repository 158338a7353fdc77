"""Alert triage for the alerts view: counts per status, rule and severity, bulk acknowledgement, and
an alert's events in one call.

Reads need a reader and acknowledging needs a writer (the app-wide guard; `require_writer` also names
the caller, who is recorded as the acknowledger). Counting is the store's (`alert_counts`, one
grouped query); nothing here reads every alert.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from aoc_api.auth import Principal, require_writer
from aoc_api.dependencies import AlertsDep, StoreDep
from aoc_api.openapi import STORE_RESPONSES
from aoc_common.events import CanonicalEvent, utc_now
from aoc_common.rules import Alert, AlertCount, Severity

router = APIRouter(prefix="/api/alerts", tags=["alerts"], responses=STORE_RESPONSES)
MAX_ID_LENGTH = 100
MAX_BULK_ACKNOWLEDGE = 500
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")


class RuleAlerts(BaseModel):
    rule_id: str
    rule_name: str
    severity: Severity
    open: int
    acknowledged: int


class SeverityAlerts(BaseModel):
    severity: Severity
    open: int
    acknowledged: int


class AlertSummary(BaseModel):
    """How many alerts are open and acknowledged, in all and per rule and severity."""

    open: int
    acknowledged: int
    by_rule: list[RuleAlerts] = Field(description="Most open alerts first, then by rule name")
    by_severity: list[SeverityAlerts] = Field(description="critical, high, medium, low")


def summarize(counts: Sequence[AlertCount], severity: Severity | None = None) -> AlertSummary:
    """The view's numbers from the store's grouped counts (optionally of one severity only)."""
    kept = [c for c in counts if severity is None or c.severity == severity]
    rules: dict[tuple[str, str, str], dict[str, int]] = defaultdict(
        lambda: {"open": 0, "acknowledged": 0}
    )
    severities: dict[str, dict[str, int]] = {s: {"open": 0, "acknowledged": 0} for s in SEVERITIES}
    for count in kept:
        rules[(count.rule_id, count.rule_name, count.severity)][count.status] += count.count
        severities[count.severity][count.status] += count.count
    by_rule = [
        RuleAlerts(rule_id=rule_id, rule_name=name, severity=sev, **numbers)  # type: ignore[arg-type]
        for (rule_id, name, sev), numbers in rules.items()
    ]
    by_rule.sort(key=lambda r: (-r.open, r.rule_name, r.rule_id))
    return AlertSummary(
        open=sum(c.count for c in kept if c.status == "open"),
        acknowledged=sum(c.count for c in kept if c.status == "acknowledged"),
        by_rule=by_rule,
        by_severity=[SeverityAlerts(severity=s, **severities[s]) for s in SEVERITIES],
    )


@router.get(
    "/summary", response_model=AlertSummary, summary="Alert counts by status, rule, severity"
)
async def alert_summary(
    store: AlertsDep,
    severity: Annotated[
        Severity | None, Query(description="Count only alerts of this severity")
    ] = None,
) -> AlertSummary:
    return summarize(await store.alert_counts(), severity)


class AcknowledgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]] = Field(
        min_length=1, max_length=MAX_BULK_ACKNOWLEDGE, description="Alert ids"
    )


class AcknowledgeResult(BaseModel):
    acknowledged: list[Alert] = Field(
        description="The alerts as stored now (one acknowledged earlier keeps who did it first)"
    )
    missing: list[str] = Field(description="Ids no alert has")


@router.post(
    "/acknowledge",
    response_model=AcknowledgeResult,
    summary=f"Acknowledge up to {MAX_BULK_ACKNOWLEDGE} alerts at once (needs a writer)",
)
async def acknowledge_alerts(
    body: Annotated[AcknowledgeRequest, Body()],
    store: AlertsDep,
    principal: Annotated[Principal, Depends(require_writer)],
) -> AcknowledgeResult:
    at = utc_now()
    acknowledged: list[Alert] = []
    missing: list[str] = []
    for alert_id in dict.fromkeys(body.ids):
        alert = await store.acknowledge_alert(alert_id, principal.name, at)
        if alert is None:
            missing.append(alert_id)
        else:
            acknowledged.append(alert)
    return AcknowledgeResult(acknowledged=acknowledged, missing=missing)


class AlertEvents(BaseModel):
    alert: Alert
    items: list[CanonicalEvent] = Field(description="The alert's events that are still stored")
    missing: list[str] = Field(description="Event ids of the alert no longer stored (retention)")


@router.get(
    "/{alert_id}/events",
    response_model=AlertEvents,
    summary="An alert with every event that raised it",
)
async def alert_events(alert_id: str, store: StoreDep) -> AlertEvents:
    alert = await store.get_alert(alert_id) if len(alert_id) <= MAX_ID_LENGTH else None
    if alert is None:
        raise HTTPException(404, "no alert with that id")
    items: list[CanonicalEvent] = []
    missing: list[str] = []
    for event_id in alert.event_ids:
        event = await store.get_event(event_id)
        if event is None:
            missing.append(event_id)
        else:
            items.append(event)
    return AlertEvents(alert=alert, items=items, missing=missing)
