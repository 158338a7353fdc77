"""Intune audit events: Microsoft Graph `/v1.0/deviceManagement/auditEvents`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from aoc_common.events import Actor, Target
from aoc_common.sources.mapping import (
    GRAPH_RECORD,
    Mapped,
    ModifiedProperty,
    Rejected,
    SourceMapping,
    as_dict,
    as_list,
    as_str,
    modified_properties,
    parse_time,
    text,
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


WHAT = "Intune auditEvent"


def map_intune_audit_event(payload: dict[str, Any], source_map: SourceMapping) -> Mapped:
    """An Intune audit event, read tolerantly: only the time and an activity are required."""
    timestamp = parse_time(payload.get("activityDateTime"), "activityDateTime", WHAT)
    activity_type = text(payload.get("activityType"))
    operation = activity_type or text(payload.get("displayName"))
    if not operation:
        raise Rejected(f"invalid {WHAT}: activityType and displayName are both empty")
    source_actor = as_dict(payload.get("actor"))
    upn = as_str(source_actor.get("userPrincipalName"))
    user_id = as_str(source_actor.get("userId"))
    app_id = as_str(source_actor.get("applicationId"))
    app_name = as_str(source_actor.get("applicationDisplayName"))
    ip = as_str(source_actor.get("ipAddress"))
    if upn:
        actor = Actor(
            type="user", id=user_id, user_principal_name=upn, app_id=app_id, ip_address=ip
        )
    elif app_name or app_id:
        actor = Actor(
            type="app",
            display_name=app_name
            or as_str(source_actor.get("servicePrincipalName"))
            or source_map.names.application(app_id),
            app_id=app_id,
        )
    elif user_id:
        # Only an object id: enrichment can name it through Graph.
        actor = Actor(type="user", id=user_id, ip_address=ip)
    else:
        actor = Actor(type="unknown")
    targets = [
        Target(
            type=as_str(r.get("type")),
            id=as_str(r.get("resourceId")),
            display_name=as_str(r.get("displayName")),
            modified_properties=modified_properties(r.get("modifiedProperties")),
        )
        for r in as_list(payload.get("resources"))
        if isinstance(r, dict)
    ]
    return Mapped(
        timestamp=timestamp,
        operation=operation,
        raw_category=as_str(payload.get("category")) or as_str(payload.get("componentName")),
        service=source_map.default_service,
        raw_result=as_str(payload.get("activityResult")),
        actor=actor,
        targets=targets,
        detail="",
        tenant_id=None,
        summary_values=_summary_values(
            targets,
            activity_type,
            operation,
            as_str(payload.get("activityOperationType")),
            source_map,
        ),
    )


def _summary_values(
    targets: list[Target],
    activity_type: str | None,
    operation: str,
    operation_type: str | None,
    source_map: SourceMapping,
) -> dict[str, str]:
    """What was done to which resource, in words: `created` + `compliance policy` + its name."""
    resource = targets[0] if targets else None
    kind = (resource.type if resource else None) or (
        activity_type.split(" ", 1)[1] if activity_type and " " in activity_type else None
    )
    verbs = source_map.labels.get("operation_verbs", {})
    # activityOperationType, else the verb Intune starts activityType with ("Delete ManagedDevice").
    operation_type = (operation_type or (activity_type or "").split(" ", 1)[0]).casefold()
    if operation_type == "action":
        verb = f"ran {operation} on" if not activity_type else verbs.get("action", "")
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
