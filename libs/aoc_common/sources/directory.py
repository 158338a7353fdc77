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
    SourceMapping,
    modified,
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
    logged_by_service: str | None = None
    initiated_by: InitiatedBy | None = None
    target_resources: list[TargetResource] = Field(default_factory=list)


def map_directory_audit(payload: dict[str, Any], source_map: SourceMapping) -> Mapped:
    record = validated(DirectoryAuditRecord, payload, "directoryAudit record")
    initiated = record.initiated_by
    if (
        initiated
        and initiated.user
        and (initiated.user.user_principal_name or initiated.user.id or initiated.user.display_name)
    ):
        user = initiated.user
        actor = Actor(
            type="user",
            id=user.id,
            display_name=user.display_name,
            user_principal_name=user.user_principal_name,
            ip_address=user.ip_address,
        )
    elif initiated and initiated.app:
        app = initiated.app
        actor = Actor(
            type="app",
            id=app.service_principal_id,
            display_name=app.display_name or app.service_principal_name,
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
    return Mapped(
        timestamp=record.activity_date_time,
        operation=record.activity_display_name,
        raw_category=record.category,
        service=service,
        raw_result=record.result,
        actor=actor,
        targets=targets,
        detail="",
        tenant_id=None,
    )


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
