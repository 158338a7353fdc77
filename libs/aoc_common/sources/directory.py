"""Entra ID directory audits: Microsoft Graph `/v1.0/auditLogs/directoryAudits`."""

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
    plain,
    text,
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
    """A Graph `directoryAudit`, as much of it as the normalizer reads (the shape documented; the
    mapper reads the record tolerantly, field by field)."""

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


WHAT = "directoryAudit record"


def map_directory_audit(payload: dict[str, Any], source_map: SourceMapping) -> Mapped:
    """A directory audit, read tolerantly: only the time and the activity are required; an optional
    field of an unexpected shape is left out, never a reason to drop the record."""
    timestamp = parse_time(payload.get("activityDateTime"), "activityDateTime", WHAT)
    activity = payload.get("activityDisplayName")
    if activity is None:
        raise Rejected(f"invalid {WHAT}: activityDisplayName: Field required")
    activity = text(activity)
    if activity is None:
        raise Rejected(
            f"invalid {WHAT}: activityDisplayName: String should have at least 1 character"
        )
    initiated = as_dict(payload.get("initiatedBy"))
    user = as_dict(initiated.get("user"))
    app = as_dict(initiated.get("app"))
    upn, user_id, user_name = (
        as_str(user.get("userPrincipalName")),
        as_str(user.get("id")),
        as_str(user.get("displayName")),
    )
    if upn or user_id or user_name:
        actor = Actor(
            type="user",
            id=user_id,
            display_name=user_name,
            user_principal_name=upn,
            ip_address=as_str(user.get("ipAddress")),
        )
    elif app and (app.get("appId") or app.get("displayName") or app.get("servicePrincipalId")):
        app_id = as_str(app.get("appId"))
        actor = Actor(
            type="app",
            id=as_str(app.get("servicePrincipalId")),
            display_name=as_str(app.get("displayName"))
            or as_str(app.get("servicePrincipalName"))
            or source_map.names.application(app_id),
            app_id=app_id,
        )
    else:
        actor = Actor(type="unknown")
    resources = [t for t in as_list(payload.get("targetResources")) if isinstance(t, dict)]
    targets = [
        Target(
            type=as_str(t.get("type")),
            id=as_str(t.get("id")),
            display_name=as_str(t.get("displayName")),
            user_principal_name=as_str(t.get("userPrincipalName")),
            modified_properties=modified_properties(t.get("modifiedProperties")),
        )
        for t in resources
    ]
    result = as_str(payload.get("result"))
    reason = as_str(payload.get("resultReason"))
    logged_by = as_str(payload.get("loggedByService"))
    return Mapped(
        timestamp=timestamp,
        operation=activity,
        raw_category=as_str(payload.get("category")),
        service=source_map.services.get(logged_by or "", source_map.default_service),
        raw_result=result,
        actor=actor,
        targets=targets,
        detail=reason or "",
        tenant_id=None,
        result_detail="; ".join(x for x in (result, reason) if x) or None,
        summary_values=_summary_values(targets, reason),
    )


def _property(target: Target, name: str) -> str | None:
    for change in target.modified_properties:
        if change.get("displayName") == name:
            return plain(change.get("newValue")) or plain(change.get("oldValue"))
    return None


def _summary_values(targets: list[Target], reason: str | None) -> dict[str, str]:
    """Who and what the summary names: users by UPN, roles and groups by name even when Microsoft
    put the name only in a (JSON-encoded) modified property."""
    found: dict[str, str] = {}
    principals: list[str] = []
    for target in targets:
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
        if target.modified_properties:
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
