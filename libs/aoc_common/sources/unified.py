"""Exchange, SharePoint, Teams and other admin audits: the Office 365 Management Activity API."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from aoc_common.sources.mapping import Mapped, SourceMapping
from aoc_common.sources.spec import ManagementActivityFeed, SourceLabels, SourceSpec
from aoc_common.sources.unified_records import SUMMARY_FIELDS, map_record


class ManagementActivityRecord(BaseModel):
    """The Management Activity API common schema: what every record has. Workload fields come on top
    and are read by `unified_records`, tolerantly (their shapes vary between workloads and years)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str | None = Field(default=None, alias="Id")
    creation_time: datetime = Field(alias="CreationTime")
    operation: str = Field(alias="Operation", min_length=1)
    organization_id: str | None = Field(default=None, alias="OrganizationId")
    record_type: Any = Field(default=None, alias="RecordType")
    result_status: Any = Field(default=None, alias="ResultStatus")
    user_id: Any = Field(default=None, alias="UserId")
    user_key: Any = Field(default=None, alias="UserKey")
    user_type: Any = Field(default=None, alias="UserType")
    workload: Any = Field(default=None, alias="Workload")
    client_ip: Any = Field(default=None, validation_alias=AliasChoices("ClientIP", "ClientIp"))
    object_id: Any = Field(default=None, alias="ObjectId")


def map_management_activity(payload: dict[str, Any], source_map: SourceMapping) -> Mapped:
    return map_record(payload, source_map)


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
    summary_fields=SUMMARY_FIELDS,
)
