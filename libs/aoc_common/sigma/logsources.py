"""Which Sigma log sources AOC serves, and how their field names reach AOC's events.

Sigma rules name fields as they appear in the log their author had in front of them: Management
Activity records (`Operation`, `UserId`, `Parameters`…) for `product: m365`, and the Azure Monitor
export of Entra ID logs (`operationName`, `properties.targetResources`, `ResultType`,
`UserPrincipalName`…) for `product: azure`. AOC keeps each record exactly as Microsoft sent it in
`raw` (Graph's camelCase for Entra ID), so a field maps to a path into `raw`: first through the
explicit names below, then generically when the name (camelCased for Graph records, `properties.`
dropped, Splunk's `{}` array marks removed) starts with a key Microsoft documents for that record.
Anything else is an unmapped field, and the rule is refused with that reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from aoc_common.sources.directory import DirectoryAuditRecord
from aoc_common.sources.signins import SignInRecord
from aoc_common.sources.unified import ManagementActivityRecord

KeyStyle = Literal["pascal", "camel"]

# Top-level keys of a Management Activity record (common schema and the Exchange, SharePoint,
# OneDrive, Teams and Entra ID workload schemas Microsoft documents).
M365_KEYS = [
    "Id",
    "RecordType",
    "CreationTime",
    "Operation",
    "OrganizationId",
    "UserType",
    "UserKey",
    "Workload",
    "ResultStatus",
    "ObjectId",
    "UserId",
    "ClientIP",
    "ClientIp",
    "Scope",
    "AppAccessContext",
    "Version",
    "ExternalAccess",
    "OrganizationName",
    "OriginatingServer",
    "Parameters",
    "ModifiedProperties",
    "ModifiedObjectResolvedName",
    "SessionId",
    "MailboxGuid",
    "MailboxOwnerUPN",
    "MailboxOwnerSid",
    "MailboxOwnerMasterAccountSid",
    "LogonType",
    "LogonUserSid",
    "LogonUserDisplayName",
    "ClientInfoString",
    "ClientIPAddress",
    "ClientProcessName",
    "ClientVersion",
    "InternalLogonType",
    "Item",
    "Items",
    "Folder",
    "Folders",
    "AffectedItems",
    "DestFolder",
    "OperationProperties",
    "OperationCount",
    "CrossMailboxOperation",
    "DestMailboxId",
    "DestMailboxOwnerUPN",
    "DestMailboxOwnerSid",
    "SendAsUserSmtp",
    "SendAsUserMailboxGuid",
    "SendOnBehalfOfUserSmtp",
    "SendOnBehalfOfUserMailboxGuid",
    "Site",
    "SiteUrl",
    "SourceFileName",
    "SourceFileExtension",
    "SourceRelativeUrl",
    "DestinationFileName",
    "DestinationFileExtension",
    "DestinationRelativeUrl",
    "ItemType",
    "ListId",
    "ListItemUniqueId",
    "ListTitle",
    "WebId",
    "EventSource",
    "EventData",
    "UserAgent",
    "CorrelationId",
    "ApplicationId",
    "ApplicationDisplayName",
    "Members",
    "TeamName",
    "TeamGuid",
    "ChannelName",
    "ChannelGuid",
    "ChannelType",
    "AADGroupId",
    "CommunicationType",
    "Actor",
    "ActorContextId",
    "ActorIpAddress",
    "InterSystemsId",
    "IntraSystemId",
    "SupportTicketId",
    "Target",
    "TargetContextId",
    "AzureActiveDirectoryEventType",
    "ExtendedProperties",
    "DeviceProperties",
    "ErrorNumber",
    "LogonError",
    "TargetUserOrGroupName",
    "TargetUserOrGroupType",
    "SharingType",
    "SensitiveInfoTypeData",
    "PolicyDetails",
    "IncidentId",
    "SensitivityLabelId",
    "Platform",
    "IsManagedDevice",
    "DeviceDisplayName",
    "GeoLocation",
    "ObjectType",
    "ModifiedProperty",
    "TenantName",
    "ResultCount",
    "Query",
]

DIRECTORY_KEYS = [
    "id",
    "category",
    "correlationId",
    "result",
    "resultReason",
    "activityDisplayName",
    "activityDateTime",
    "loggedByService",
    "operationType",
    "initiatedBy",
    "targetResources",
    "additionalDetails",
]

SIGNIN_KEYS = [
    "id",
    "createdDateTime",
    "userDisplayName",
    "userPrincipalName",
    "userId",
    "appId",
    "appDisplayName",
    "ipAddress",
    "clientAppUsed",
    "correlationId",
    "conditionalAccessStatus",
    "isInteractive",
    "riskDetail",
    "riskLevelAggregated",
    "riskLevelDuringSignIn",
    "riskState",
    "riskEventTypes",
    "riskEventTypes_v2",
    "resourceDisplayName",
    "resourceId",
    "status",
    "deviceDetail",
    "location",
    "appliedConditionalAccessPolicies",
    "authenticationRequirement",
    "authenticationDetails",
    "authenticationMethodsUsed",
    "authenticationProtocol",
    "authenticationProcessingDetails",
    "signInEventTypes",
    "userAgent",
    "servicePrincipalId",
    "servicePrincipalName",
    "userType",
    "crossTenantAccessType",
    "homeTenantId",
    "resourceTenantId",
    "mfaDetail",
    "networkLocationDetails",
    "originalRequestId",
    "tokenIssuerType",
    "tokenIssuerName",
    "incomingTokenType",
    "uniqueTokenIdentifier",
    "flaggedForReview",
    "authenticationContextClassReferences",
    "sessionLifetimePolicies",
    "processingTimeInMilliseconds",
    "clientCredentialType",
    "managedServiceIdentity",
]

# Names the Azure Monitor export (and Sentinel's SigninLogs / AuditLogs tables) use for Graph's
# fields, where the generic camelCase rule does not reach the right one.
AUDITLOGS_FIELDS = {
    "operationName": "raw.activityDisplayName",
    "OperationName": "raw.activityDisplayName",
    "properties.operationName": "raw.activityDisplayName",
    "properties.message": "raw.activityDisplayName",
    "ActivityDisplayName": "raw.activityDisplayName",
    "Category": "raw.category",
    "Status": "raw.result",
    "properties.status": "raw.result",
    "Result": "raw.result",
    "ResultType": "raw.result",
    "ResultReason": "raw.resultReason",
    "ResultDescription": "raw.resultReason",
    "Target": "raw.targetResources",
    "Initiated by (UPN)": "raw.initiatedBy.user.userPrincipalName",
    "InitiatedBy": "raw.initiatedBy",
    "TargetResources": "raw.targetResources",
}

SIGNINLOGS_FIELDS = {
    "ResultType": "raw.status.errorCode",
    "properties.status.errorCode": "raw.status.errorCode",
    "ResultDescription": "raw.status.failureReason",
    "ResultSignature": "result",
    "Status": "raw.status",
    "UserPrincipalName": "raw.userPrincipalName",
    "Username": "raw.userPrincipalName",
    "UserName": "raw.userPrincipalName",
    "Identity": "raw.userDisplayName",
    "IPAddress": "raw.ipAddress",
    "Location": "raw.location.countryOrRegion",
    "LocationDetails": "raw.location",
    "ClientApp": "raw.clientAppUsed",
    "ClientAppUsed": "raw.clientAppUsed",
    "AppDisplayName": "raw.appDisplayName",
    "ResourceDisplayName": "raw.resourceDisplayName",
    "RiskEventTypes": "raw.riskEventTypes_v2",
}

M365_FIELDS: dict[str, str] = {}


@dataclass(frozen=True)
class ServedLogsource:
    """One (product, service) AOC can run rules on: the AOC source its events come from, the
    extra conditions that narrow it (a workload), and how its field names map."""

    product: str
    service: str
    source: str
    description: str
    key_style: KeyStyle
    keys: tuple[str, ...]
    fields: Mapping[str, str] = field(default_factory=dict)
    conditions: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.product}/{self.service}"

    def map_field(self, name: str) -> str | None:
        """The AOC path for a Sigma field name, or None when it is not a field of this log (the
        first spelling, where Microsoft spells a key two ways: see `map_field_all`)."""
        paths = self.map_field_all(name)
        return paths[0] if paths else None

    def map_field_all(self, name: str) -> list[str]:
        """Every AOC path a Sigma field name means: one, or one per spelling Microsoft uses for
        the key (`ClientIP` and `ClientIp` in Management Activity records); empty when none."""
        if name in self.fields:
            return [self.fields[name]]
        found = self._map_field(name)
        if found is None:
            return []
        if not found.startswith("raw."):
            return [found]
        head, _, rest = found[4:].partition(".")
        variants = [key for key in self.keys if key.casefold() == head.split("[")[0].casefold()]
        if len(variants) <= 1:
            return [found]
        suffix = head[len(head.split("[")[0]) :] + (f".{rest}" if rest else "")
        return [f"raw.{variant}{suffix}" for variant in variants]

    def _map_field(self, name: str) -> str | None:
        if name in self.fields:
            return self.fields[name]
        folded = {key.casefold(): path for key, path in self.fields.items()}
        if name.casefold() in folded:  # `Resultdescription`: column names read case-blind
            return folded[name.casefold()]
        if name.startswith(("raw.", "aoc.")):
            return name[4:] if name.startswith("aoc.") else name
        path = name.replace("{}", "")
        if path.startswith("properties."):
            path = path[len("properties.") :]
        segments = [segment for segment in path.split(".") if segment]
        if not segments:
            return None
        known = {key.casefold(): key for key in self.keys}
        first = known.get(segments[0].casefold())
        if first is None:
            return None
        rest = segments[1:]
        if self.key_style == "camel":
            rest = [_camel(segment) for segment in rest]
        elif first in ("Parameters", "ModifiedProperties", "ExtendedProperties") and rest:
            return _named_entry(first, rest)
        return ".".join(["raw", first, *rest])


def _camel(segment: str) -> str:
    """`DeviceDetail` → `deviceDetail`; `IPAddress` → `ipAddress`; camelCase stays."""
    leading = re.match(r"[A-Z]+(?=[A-Z][a-z]|$)|[A-Z]", segment)
    if leading is None:
        return segment
    return segment[: leading.end()].lower() + segment[leading.end() :]


# Management Activity lists of {Name, Value} / {Name, NewValue, OldValue} entries: a rule may name
# an entry (`Parameters.ForwardTo`, `ModifiedProperties.Role.NewValue`), as Elastic's and
# Splunk's M365 field names do.
_ENTRY_VALUE = {
    "Parameters": "Value",
    "ExtendedProperties": "Value",
    "ModifiedProperties": "NewValue",
}
_ENTRY_KEYS = {"Name", "Value", "NewValue", "OldValue"}


def _named_entry(first: str, rest: list[str]) -> str:
    if rest[0] in _ENTRY_KEYS:
        return ".".join(["raw", first, *rest])
    name, *after = rest
    leaf = after[0] if after else _ENTRY_VALUE[first]
    return f"raw.{first}[Name={name}].{leaf}"


def _keys_of(model: type, documented: list[str]) -> tuple[str, ...]:
    aliases = [info.alias or name for name, info in model.model_fields.items()]  # type: ignore[attr-defined]
    return tuple(dict.fromkeys([*documented, *(a for a in aliases if a[:1].isalpha())]))


_M365 = _keys_of(ManagementActivityRecord, M365_KEYS)
_DIRECTORY = _keys_of(DirectoryAuditRecord, DIRECTORY_KEYS)
_SIGNINS = _keys_of(SignInRecord, SIGNIN_KEYS)


def _m365(service: str, description: str, workload: str | None = None) -> ServedLogsource:
    conditions = {"raw.Workload": workload} if workload else {}
    return ServedLogsource(
        "m365", service, "unified", description, "pascal", _M365, M365_FIELDS, conditions
    )


SERVED: tuple[ServedLogsource, ...] = (
    _m365("audit", "every Management Activity record (Exchange, SharePoint, Teams, Entra ID…)"),
    _m365("exchange", "Management Activity records of Exchange Online", "Exchange"),
    _m365("sharepoint", "Management Activity records of SharePoint Online", "SharePoint"),
    _m365("onedrive", "Management Activity records of OneDrive", "OneDrive"),
    _m365("teams", "Management Activity records of Microsoft Teams", "MicrosoftTeams"),
    _m365("azuread", "Management Activity records of Entra ID", "AzureActiveDirectory"),
    ServedLogsource(
        "azure",
        "auditlogs",
        "directory",
        "Entra ID directory audits (Graph directoryAudits)",
        "camel",
        _DIRECTORY,
        AUDITLOGS_FIELDS,
    ),
    ServedLogsource(
        "azure",
        "signinlogs",
        "signins",
        "Entra ID sign-in logs (Graph signIns)",
        "camel",
        _SIGNINS,
        SIGNINLOGS_FIELDS,
    ),
)

# Log sources of the same products that AOC does not collect, with what they are, so a refusal
# says why rather than only "not served".
NOT_COLLECTED = {
    ("m365", "threat_management"): "Microsoft 365 Defender / Security & Compliance alerts",
    ("m365", "threat_detection"): "Microsoft 365 Defender / Security & Compliance alerts",
    ("azure", "activitylogs"): "the Azure Resource Manager activity log",
    ("azure", "riskdetection"): "Entra ID Protection risk detections",
    ("azure", "pim"): "Privileged Identity Management alerts",
    ("azure", "identityprotection"): "Entra ID Protection risk detections",
}


def served_logsource(product: str | None, service: str | None) -> ServedLogsource | str:
    """The served log source, or the exact reason a rule on this one cannot run."""
    for served in SERVED:
        if served.product == product and served.service == service:
            return served
    served_names = ", ".join(s.name for s in SERVED)
    what = NOT_COLLECTED.get((product or "", service or ""))
    named = f"product: {product or '(none)'}, service: {service or '(none)'}"
    if what:
        return (
            f"log source {named} is {what}, which AOC does not collect (AOC serves {served_names})"
        )
    return f"log source {named} is not one AOC collects (AOC serves {served_names})"
