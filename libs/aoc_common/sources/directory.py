"""Entra ID directory audits: Microsoft Graph `/v1.0/auditLogs/directoryAudits`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from aoc_common.events import Actor, Target
from aoc_common.sources.mapping import (
    GRAPH_RECORD,
    Mapped,
    ModifiedProperty,
    SourceMapping,
    modified,
    plain,
    text,
    validated,
)
from aoc_common.sources.spec import GraphPaging, SourceLabels, SourceSpec


class DirectoryUserIdentity(BaseModel):
    model_config = GRAPH_RECORD

    id: str | None = None
    display_name: str | None = None
    user_principal_name: str | None = None
    ip_address: str | None = None


class DirectoryAppIdentity(BaseModel):
    model_config = GRAPH_RECORD

    app_id: str | None = None
    display_name: str | None = None
    service_principal_id: str | None = None
    service_principal_name: str | None = None


class InitiatedBy(BaseModel):
    model_config = GRAPH_RECORD

    user: DirectoryUserIdentity | None = None
    app: DirectoryAppIdentity | None = None


class TargetResource(BaseModel):
    model_config = GRAPH_RECORD

    id: str | None = None
    display_name: str | None = None
    type: str | None = None
    user_principal_name: str | None = None
    modified_properties: list[ModifiedProperty] = Field(default_factory=list)


class DirectoryAuditRecord(BaseModel):
    """A Graph `directoryAudit`, as much of it as the normalizer reads."""

    model_config = GRAPH_RECORD

    id: str | None = None
    activity_date_time: datetime
    activity_display_name: str = Field(min_length=1)
    category: str | None = None
    result: str | None = None
    result_reason: str | None = None
    logged_by_service: str | None = None
    initiated_by: InitiatedBy | None = None
    target_resources: list[TargetResource] = Field(default_factory=list)


def map_directory_audit(payload: dict[str, Any], source_map: SourceMapping) -> Mapped:
    record = _tolerant(payload)
    names = source_map.names
    initiated = record.initiated_by
    user = initiated.user if initiated else None
    app = initiated.app if initiated else None
    if user and (user.user_principal_name or user.id or user.display_name):
        actor = Actor(
            type="user",
            id=user.id,
            display_name=user.display_name,
            user_principal_name=user.user_principal_name,
            ip_address=user.ip_address,
        )
    elif app and (app.app_id or app.display_name or app.service_principal_id):
        actor = Actor(
            type="app",
            id=app.service_principal_id,
            display_name=app.display_name
            or app.service_principal_name
            or names.application(app.app_id),
            app_id=app.app_id,
        )
    else:
        actor = Actor(type="unknown")
    targets = [
        Target(
            type=t.type,
            id=t.id,
            display_name=t.display_name,
            user_principal_name=t.user_principal_name,
            modified_properties=modified(t.modified_properties),
        )
        for t in record.target_resources
    ]
    service = source_map.services.get(record.logged_by_service or "", source_map.default_service)
    reason = text(record.result_reason)
    return Mapped(
        timestamp=record.activity_date_time,
        operation=record.activity_display_name,
        raw_category=record.category,
        service=service,
        raw_result=record.result,
        actor=actor,
        targets=targets,
        detail=reason or "",
        tenant_id=None,
        result_detail="; ".join(x for x in (record.result, reason) if x) or None,
        summary_values=_summary_values(record, reason),
    )


def _tolerant(payload: dict[str, Any]) -> DirectoryAuditRecord:
    """The record, with optional fields of an unexpected shape left out instead of refused: only
    the time and the activity are required."""
    try:
        return DirectoryAuditRecord.model_validate(payload)
    except ValidationError as error:
        broken = {str(e["loc"][0]) for e in error.errors() if e["loc"]}
        required = {"activityDateTime", "activity_date_time", "activityDisplayName"}
        if broken & required or not broken:
            validated(DirectoryAuditRecord, payload, "directoryAudit record")  # raises Rejected
        kept = {k: v for k, v in payload.items() if k not in broken}
        return validated(DirectoryAuditRecord, kept, "directoryAudit record")


def _property(target: TargetResource, name: str) -> str | None:
    for change in target.modified_properties:
        if change.display_name == name:
            return plain(change.new_value) or plain(change.old_value)
    return None


def _summary_values(record: DirectoryAuditRecord, reason: str | None) -> dict[str, str]:
    """Who and what the summary names: users by UPN, roles and groups by name even when Microsoft
    put the name only in a (JSON-encoded) modified property."""
    found: dict[str, str] = {}
    principals: list[str] = []
    for target in record.target_resources:
        kind = (target.type or "").casefold()
        name = target.display_name
        if kind == "user":
            name = target.user_principal_name or name
            if name:
                found.setdefault("member", name)
        elif kind == "serviceprincipal" and name:
            principals.append(name)
        elif kind == "role" and name:
            found.setdefault("role", name)
        elif kind == "group" and name:
            found.setdefault("group", name)
        for key, property_name in (
            ("role", "Role.DisplayName"),
            ("role", "AppRole.Value"),
            ("group", "Group.DisplayName"),
        ):
            value = _property(target, property_name)
            if value:
                found.setdefault(key, value)
        permissions = _property(target, "ConsentAction.Permissions")
        if permissions and "Scope:" in permissions:
            scopes = permissions.split("Scope:", 1)[1].split(",", 1)[0].strip()
            if scopes:
                found["detail"] = scopes
        if name and kind not in ("role", "request"):
            found.setdefault("target", name)
    if len(principals) > 1:
        # An app role assignment names the resource first and the client second: the client is
        # the one that was granted something.
        found["target"] = principals[-1]
    if "detail" not in found and reason:
        found["detail"] = reason
    return found


SPEC = SourceSpec(
    id="directory",
    labels=SourceLabels(
        display_name="Entra ID directory audits",
        description="Entra ID directory audits (users, groups, roles, apps, policies)",
        retention="Microsoft Graph keeps Entra directory audits",
    ),
    record_id_field="id",
    record_time_field="activityDateTime",
    history_limit=timedelta(days=30),  # Entra directory audits via Graph (P1/P2 tenants)
    collection=GraphPaging(
        path="auditLogs/directoryAudits",
        time_field="activityDateTime",
        # Graph offers no change notifications on audit collections; one on a directory object
        # (users, groups, applications…) says an admin changed something.
        notified_by=("",),
    ),
    record_model=DirectoryAuditRecord,
    mapper=map_directory_audit,
    name_enrichment="actor_and_targets",
    samples=("graph_directory_audits_page*.json",),
)
