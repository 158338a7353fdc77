"""The raw record shapes of the three Microsoft APIs, as much of them as the normalizer reads.

Unknown fields are allowed (Microsoft adds fields without notice, and the whole record is kept in `raw`);
wrong types in the fields we read are not, so that a record we would misread becomes a dead letter instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

_GRAPH = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)


class ModifiedProperty(BaseModel):
    model_config = _GRAPH

    display_name: str | None = None
    old_value: str | None = None
    new_value: str | None = None


# --- Graph directoryAudit (/v1.0/auditLogs/directoryAudits) ---


class DirectoryUserIdentity(BaseModel):
    model_config = _GRAPH

    id: str | None = None
    display_name: str | None = None
    user_principal_name: str | None = None
    ip_address: str | None = None


class DirectoryAppIdentity(BaseModel):
    model_config = _GRAPH

    app_id: str | None = None
    display_name: str | None = None
    service_principal_id: str | None = None
    service_principal_name: str | None = None


class InitiatedBy(BaseModel):
    model_config = _GRAPH

    user: DirectoryUserIdentity | None = None
    app: DirectoryAppIdentity | None = None


class TargetResource(BaseModel):
    model_config = _GRAPH

    id: str | None = None
    display_name: str | None = None
    type: str | None = None
    user_principal_name: str | None = None
    modified_properties: list[ModifiedProperty] = Field(default_factory=list)


class DirectoryAuditRecord(BaseModel):
    model_config = _GRAPH

    id: str | None = None
    activity_date_time: datetime
    activity_display_name: str = Field(min_length=1)
    category: str | None = None
    result: str | None = None
    logged_by_service: str | None = None
    initiated_by: InitiatedBy | None = None
    target_resources: list[TargetResource] = Field(default_factory=list)


# --- Graph Intune auditEvent (/v1.0/deviceManagement/auditEvents) ---


class IntuneActor(BaseModel):
    model_config = _GRAPH

    user_principal_name: str | None = None
    user_id: str | None = None
    application_id: str | None = None
    application_display_name: str | None = None
    service_principal_name: str | None = None
    ip_address: str | None = None


class IntuneResource(BaseModel):
    model_config = _GRAPH

    display_name: str | None = None
    type: str | None = None
    resource_id: str | None = None
    modified_properties: list[ModifiedProperty] = Field(default_factory=list)


class IntuneAuditEvent(BaseModel):
    model_config = _GRAPH

    id: str | None = None
    activity_date_time: datetime
    activity_type: str | None = None
    display_name: str | None = None
    activity_result: str | None = None
    category: str | None = None
    component_name: str | None = None
    actor: IntuneActor | None = None
    resources: list[IntuneResource] = Field(default_factory=list)


# --- Office 365 Management Activity API common schema (+ workload-specific fields) ---


class ManagementActivityRecord(BaseModel):
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
