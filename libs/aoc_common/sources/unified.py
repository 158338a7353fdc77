"""Exchange, SharePoint, Teams and other admin audits: the Office 365 Management Activity API."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from aoc_common.events import Actor, Target
from aoc_common.sources.mapping import Mapped, SourceMapping, validated
from aoc_common.sources.spec import ManagementActivityFeed, SourceLabels, SourceSpec


class ManagementActivityRecord(BaseModel):
    """The Management Activity API common schema, plus the workload fields the mapper reads."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str | None = Field(default=None, alias="Id")
    creation_time: datetime = Field(alias="CreationTime")
    operation: str = Field(alias="Operation", min_length=1)
    organization_id: str | None = Field(default=None, alias="OrganizationId")
    record_type: int | None = Field(default=None, alias="RecordType")
    result_status: str | None = Field(default=None, alias="ResultStatus")
    user_id: str | None = Field(default=None, alias="UserId")
    user_key: str | None = Field(default=None, alias="UserKey")
    workload: str | None = Field(default=None, alias="Workload")
    client_ip: str | None = Field(
        default=None, validation_alias=AliasChoices("ClientIP", "ClientIp")
    )
    object_id: str | None = Field(default=None, alias="ObjectId")
    parameters: list[dict[str, Any]] = Field(default_factory=list, alias="Parameters")
    site_url: str | None = Field(default=None, alias="SiteUrl")
    target_user_or_group_name: str | None = Field(default=None, alias="TargetUserOrGroupName")
    team_name: str | None = Field(default=None, alias="TeamName")
    members: list[dict[str, Any]] = Field(default_factory=list, alias="Members")
    target: list[dict[str, Any]] = Field(default_factory=list, alias="Target")


def map_management_activity(payload: dict[str, Any], source_map: SourceMapping) -> Mapped:
    record = validated(ManagementActivityRecord, payload, "Management Activity record")
    user = record.user_id or record.user_key
    actor = Actor(
        type="user" if user and "@" in user else ("system" if user else "unknown"),
        id=record.user_key,
        user_principal_name=record.user_id if record.user_id and "@" in record.user_id else None,
        display_name=None if record.user_id and "@" in record.user_id else record.user_id,
        ip_address=record.client_ip,
    )
    targets, detail = _targets(record)
    return Mapped(
        timestamp=record.creation_time,
        operation=record.operation,
        raw_category=None if record.record_type is None else str(record.record_type),
        service=source_map.services.get(record.workload or "", source_map.default_service),
        raw_result=record.result_status,
        actor=actor,
        targets=targets,
        detail=detail,
        tenant_id=record.organization_id,
    )


def _targets(record: ManagementActivityRecord) -> tuple[list[Target], str]:
    """Each workload names its targets differently; `detail` is what the summary shows besides them."""
    workload = (record.workload or "").lower()
    if workload == "exchange":
        parameters = [p for p in record.parameters if isinstance(p.get("Name"), str)]
        shown = [f"{p['Name']}={p.get('Value', '')}" for p in parameters if p["Name"] != "Identity"]
        name = record.object_id or next(
            (str(p.get("Value")) for p in parameters if p["Name"] == "Identity"), None
        )
        targets = [Target(type="Mailbox", display_name=name)] if name else []
        return targets, "; ".join(shown)
    if workload in ("sharepoint", "onedrive"):
        site = record.site_url or record.object_id or ""
        targets = [Target(type="Site", display_name=site)] if site else []
        if record.target_user_or_group_name:
            targets.append(Target(type="User", display_name=record.target_user_or_group_name))
        return targets, site
    if workload == "microsoftteams":
        team = record.team_name or ""
        targets = [Target(type="Team", display_name=team)] if team else []
        for member in record.members:
            name = member.get("UPN") or member.get("DisplayName")
            if isinstance(name, str) and name:
                targets.append(Target(type="Member", display_name=name))
        return targets, team
    if workload == "azureactivedirectory":
        names = [t["ID"] for t in record.target if isinstance(t.get("ID"), str) and "@" in t["ID"]]
        return [Target(type="User", user_principal_name=n) for n in names] or (
            [Target(display_name=record.object_id)] if record.object_id else []
        ), ""
    return ([Target(display_name=record.object_id)] if record.object_id else []), ""


SPEC = SourceSpec(
    id="unified",
    labels=SourceLabels(
        display_name="Office 365 management activity",
        description="Exchange, SharePoint, Teams and Entra admin audits (Management Activity API)",
        retention="The Management Activity API keeps content",
    ),
    record_id_field="Id",
    record_time_field="CreationTime",
    history_limit=timedelta(days=7),
    collection=ManagementActivityFeed(
        content_types=(
            "Audit.AzureActiveDirectory",
            "Audit.Exchange",
            "Audit.SharePoint",
            "Audit.General",
        )
    ),
    record_model=ManagementActivityRecord,
    mapper=map_management_activity,
    samples=("o365_management_activity.json",),
)
