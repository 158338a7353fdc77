"""Intune audit events: Microsoft Graph `/v1.0/deviceManagement/auditEvents`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from aoc_common.events import Actor, Target
from aoc_common.sources.mapping import (
    GRAPH_RECORD,
    Mapped,
    ModifiedProperty,
    Rejected,
    SourceMapping,
    modified,
    validated,
)
from aoc_common.sources.spec import GraphPaging, SourceLabels, SourceSpec


class IntuneActor(BaseModel):
    model_config = GRAPH_RECORD

    user_principal_name: str | None = None
    user_id: str | None = None
    application_id: str | None = None
    application_display_name: str | None = None
    service_principal_name: str | None = None
    ip_address: str | None = None


class IntuneResource(BaseModel):
    model_config = GRAPH_RECORD

    display_name: str | None = None
    type: str | None = None
    resource_id: str | None = None
    modified_properties: list[ModifiedProperty] = Field(default_factory=list)


class IntuneAuditEvent(BaseModel):
    """A Graph Intune `auditEvent`, as much of it as the normalizer reads."""

    model_config = GRAPH_RECORD

    id: str | None = None
    activity_date_time: datetime
    activity_type: str | None = None
    activity_operation_type: str | None = None
    display_name: str | None = None
    activity_result: str | None = None
    category: str | None = None
    component_name: str | None = None
    actor: IntuneActor | None = None
    resources: list[IntuneResource] = Field(default_factory=list)


def map_intune_audit_event(payload: dict[str, Any], source_map: SourceMapping) -> Mapped:
    record = _tolerant(payload)
    operation = record.activity_type or record.display_name
    if not operation:
        raise Rejected("invalid Intune auditEvent: activityType and displayName are both empty")
    names = source_map.names
    source_actor = record.actor
    if source_actor and source_actor.user_principal_name:
        actor = Actor(
            type="user",
            id=source_actor.user_id,
            user_principal_name=source_actor.user_principal_name,
            app_id=source_actor.application_id,
            ip_address=source_actor.ip_address,
        )
    elif source_actor and (source_actor.application_display_name or source_actor.application_id):
        actor = Actor(
            type="app",
            display_name=source_actor.application_display_name
            or source_actor.service_principal_name
            or names.application(source_actor.application_id),
            app_id=source_actor.application_id,
        )
    elif source_actor and source_actor.user_id:
        # Only an object id: enrichment can name it through Graph.
        actor = Actor(type="user", id=source_actor.user_id, ip_address=source_actor.ip_address)
    else:
        actor = Actor(type="unknown")
    targets = [
        Target(
            type=r.type,
            id=r.resource_id,
            display_name=r.display_name,
            modified_properties=modified(r.modified_properties),
        )
        for r in record.resources
    ]
    return Mapped(
        timestamp=record.activity_date_time,
        operation=operation,
        raw_category=record.category or record.component_name,
        service=source_map.default_service,
        raw_result=record.activity_result,
        actor=actor,
        targets=targets,
        detail="",
        tenant_id=None,
        summary_values=_summary_values(record, operation, source_map),
    )


def _tolerant(payload: dict[str, Any]) -> IntuneAuditEvent:
    """The event, with optional fields of an unexpected shape left out instead of refused."""
    try:
        return IntuneAuditEvent.model_validate(payload)
    except ValidationError as error:
        broken = {str(e["loc"][0]) for e in error.errors() if e["loc"]}
        if not broken or broken & {"activityDateTime", "activity_date_time"}:
            validated(IntuneAuditEvent, payload, "Intune auditEvent")  # raises Rejected
        kept = {k: v for k, v in payload.items() if k not in broken}
        return validated(IntuneAuditEvent, kept, "Intune auditEvent")


def _summary_values(
    record: IntuneAuditEvent, operation: str, source_map: SourceMapping
) -> dict[str, str]:
    """What was done to which resource, in words: `created` + `compliance policy` + its name."""
    resource = record.resources[0] if record.resources else None
    kind = (resource.type if resource else None) or (
        record.activity_type.split(" ", 1)[1]
        if record.activity_type and " " in record.activity_type
        else None
    )
    verbs = source_map.labels.get("operation_verbs", {})
    # activityOperationType, else the verb Intune starts activityType with ("Delete ManagedDevice").
    operation_type = (
        record.activity_operation_type or (record.activity_type or "").split(" ", 1)[0]
    ).casefold()
    if operation_type == "action":
        verb = (
            f"ran {operation} on"
            if not record.activity_type
            else verbs.get("action", "ran an action on")
        )
    else:
        verb = verbs.get(operation_type, "")
    values = {
        "verb": verb,
        "resource": _resource_label(kind, source_map) or "",
        "target": (resource.display_name if resource else None) or "",
    }
    return {k: v for k, v in values.items() if v}


def _resource_label(kind: str | None, source_map: SourceMapping) -> str | None:
    """Intune's resource type in words: an exact entry first, then the longest matching suffix
    (every `…CompliancePolicy` is a compliance policy), else the type as Intune wrote it."""
    if not kind:
        return None
    exact = source_map.labels.get("resource_types", {})
    if kind in exact:
        return exact[kind]
    suffixes = source_map.labels.get("resource_type_suffixes", {})
    for suffix in sorted(suffixes, key=len, reverse=True):
        if kind.endswith(suffix):
            return suffixes[suffix]
    return kind


SPEC = SourceSpec(
    id="intune",
    labels=SourceLabels(
        display_name="Intune audit events",
        description="Intune audit events (devices, compliance and configuration policies, apps)",
        retention="Microsoft Graph keeps Intune audit events",
    ),
    record_id_field="id",
    record_time_field="activityDateTime",
    history_limit=timedelta(days=365),
    collection=GraphPaging(
        path="deviceManagement/auditEvents",
        time_field="activityDateTime",
        notified_by=("devicemanagement",),
    ),
    record_model=IntuneAuditEvent,
    mapper=map_intune_audit_event,
    summary_fields={
        "verb": "what was done, in words: created, changed, deleted, assigned, ran an action on",
        "resource": "the kind of Intune object, in words: compliance policy, managed device…",
    },
    name_enrichment="actor",
    samples=("graph_intune_audit_events.json",),
)
