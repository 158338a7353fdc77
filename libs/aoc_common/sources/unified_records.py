"""What a Management Activity record says, read family by family (Exchange admin, mailbox items,
SharePoint and OneDrive, Entra ID, DLP, alerts, Teams, Power BI, Defender…): who acted, on what, where,
and the words a summary needs.

Records are read tolerantly: only `CreationTime` and `Operation` are required; any other field of an
unexpected shape (Parameters as a string, a JSON-encoded list, one object instead of a list) is
normalised or ignored, and the whole record is kept in `raw` regardless. Pure functions only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from aoc_common.events import Actor, Target
from aoc_common.sources.mapping import (
    DetailValue,
    Mapped,
    Rejected,
    SourceMapping,
    as_dict,
    as_list,
    first_few,
    is_guid,
    list_of_text,
    name_value_pairs,
    operation_key,
    parse_time,
    plain,
    text,
)

WHAT = "Management Activity record"

# Placeholders the unified source's summary templates may use besides the common ones.
SUMMARY_FIELDS: dict[str, str] = {
    "location": "where it happened: a site, a mailbox folder, a workspace, a device",
    "destination": "where something was moved or copied to",
    "new_name": "the new name of something renamed",
    "subject": "a message or meeting subject",
    "items": "the messages acted on, quoted: the first three, then 'and N more'",
    "members": "every member named: the first three, then 'and N more'",
    "rights": "the permissions granted or removed (FullAccess, SendAs…)",
    "rule": "an inbox rule's name",
    "actions": "what an inbox rule does: forwards to …, deletes the message…",
    "policy": "a DLP, alert or auto-labeling policy name",
    "sensitive_types": "the sensitive information types a DLP rule matched",
    "severity": "an alert's severity",
    "status": "an alert's or investigation's status",
    "team": "the Teams team",
    "channel": "the Teams channel",
    "app": "an application: the one signed in to, a Teams app, the Copilot host",
    "sender": "a message's sender",
    "verdict": "Defender's verdict (Phish, Malware…)",
    "query": "a search query",
    "label": "a sensitivity label's name",
}

_NOT_AN_ID = frozenset({"", "not available", "unknown", "null"})
# Parameters that say nothing about what a cmdlet changed.
_QUIET_PARAMETERS = frozenset(
    {"identity", "domaincontroller", "force", "confirm", "erroraction", "warningaction", "verbose"}
)
_RULE_OPERATIONS = frozenset(
    {"new-inboxrule", "set-inboxrule", "remove-inboxrule", "enable-inboxrule", "disable-inboxrule"}
)
_RULE_ACTIONS: dict[str, Callable[[str], str | None]] = {
    "forwardto": lambda v: f"forwards to {v}",
    "forwardasattachmentto": lambda v: f"forwards as attachment to {v}",
    "redirectto": lambda v: f"redirects to {v}",
    "movetofolder": lambda v: f"moves to {v}",
    "copytofolder": lambda v: f"copies to {v}",
    "deletemessage": lambda v: "deletes the message" if _true(v) else None,
    "softdeletemessage": lambda v: "deletes the message" if _true(v) else None,
    "permanentdelete": lambda v: "permanently deletes the message" if _true(v) else None,
    "markasread": lambda v: "marks as read" if _true(v) else None,
}
_RULE_ACTION_TYPES: dict[str, str] = {
    "forward": "forwards to {}",
    "forwardasattachment": "forwards as attachment to {}",
    "redirect": "redirects to {}",
    "movetofolder": "moves to {}",
    "copytofolder": "copies to {}",
    "delete": "deletes the message",
    "permanentdelete": "permanently deletes the message",
    "markasread": "marks as read",
}
_RULE_CHANGES = {
    "addmailboxrule": "added",
    "modifymailboxrule": "changed",
    "removemailboxrule": "removed",
}


def _true(value: str) -> bool:
    return value.strip().casefold() in ("true", "$true", "1")


@dataclass(slots=True)
class Parts:
    """What a workload family reads from its records besides the common fields."""

    targets: list[Target] = field(default_factory=list)
    detail: str = ""
    values: dict[str, str] = field(default_factory=dict)
    details: dict[str, DetailValue] = field(default_factory=dict)
    affected: str | None = None  # the person a record written by an agent is about
    result_detail: str | None = None

    def slot(self, **values: str | None) -> None:
        for name, value in values.items():
            if value:
                self.values[name] = value


class Record:
    """The record being read, with what every family needs to know about it."""

    __slots__ = ("get", "key", "operation", "payload", "record_type", "section", "workload")

    def __init__(
        self,
        payload: dict[str, Any],
        operation: str,
        key: str,
        record_type: str | None,
        workload: str | None,
        section: SourceMapping,
    ) -> None:
        self.payload = payload
        self.get = payload.get
        self.operation = operation  # as Microsoft wrote it
        self.key = key  # compared form (see `operation_key`)
        self.record_type = record_type
        self.workload = workload
        self.section = section

    def text(self, name: str) -> str | None:
        return text(self.payload.get(name))


def map_record(payload: dict[str, Any], section: SourceMapping) -> Mapped:
    timestamp = parse_time(payload.get("CreationTime"), "CreationTime", WHAT)
    operation = text(payload.get("Operation"))
    if operation is None:
        raise Rejected(f"invalid {WHAT}: Operation: String should have at least 1 character")
    record = Record(
        payload,
        operation,
        operation_key(operation),
        text(payload.get("RecordType")),
        text(payload.get("Workload")),
        section,
    )
    parts = _family(record)(record)
    actor, agent = _actor(record, parts.affected)
    if agent:
        parts.details.setdefault("agent", agent)
    workload = record.workload
    return Mapped(
        timestamp=timestamp,
        operation=operation,
        raw_category=record.record_type,
        service=section.services.get(workload or "") or workload or section.default_service,
        raw_result=payload.get("ResultStatus"),
        actor=actor,
        targets=parts.targets,
        detail=parts.detail,
        tenant_id=record.text("OrganizationId"),
        result_detail=parts.result_detail,
        details=parts.details,
        summary_values=parts.values,
    )


# --- who acted ---


def _actor(record: Record, affected: str | None) -> tuple[Actor, str | None]:
    """The party an analyst pivots on, and the agent that wrote the record on its behalf if any."""
    ip = (
        text(record.get("ClientIP"))
        or text(record.get("ClientIp"))
        or text(record.get("ActorIpAddress"))
    )
    user_agent = text(record.get("UserAgent"))
    user_id = _identity(record.get("UserId"))
    user_key = _identity(record.get("UserKey"))
    if affected:
        agent = user_id or user_key
        return Actor(
            type="user",
            user_principal_name=affected if "@" in affected else None,
            display_name=None if "@" in affected else affected,
            ip_address=ip,
        ), agent
    who = user_id or (user_key if user_key and not user_key.isdigit() else None)
    if who is None:
        claims = _claims(record.get("Actor"))
        who = claims.get(5) or claims.get(1)
        if who is None:
            return Actor(type="unknown", ip_address=ip), None
    return _classified(record, who, user_key, ip, user_agent), None


def _identity(value: Any) -> str | None:
    found = text(value)
    return None if found is None or found.casefold() in _NOT_AN_ID else found


def _classified(
    record: Record, who: str, user_key: str | None, ip: str | None, user_agent: str | None
) -> Actor:
    names = record.section.names
    system_name = names.system_accounts.get(who)
    if system_name is not None:
        return Actor(type="system", id=who, display_name=system_name, ip_address=ip)
    lowered = who.casefold()
    if lowered == "app@sharepoint":
        app_id = record.text("ApplicationId")
        name = record.text("ApplicationDisplayName") or names.application(app_id) or who
        return Actor(type="app", id=user_key, display_name=name, app_id=app_id, ip_address=ip)
    if lowered.startswith("serviceprincipal_") or is_guid(who):
        claims = _claims(record.get("Actor"))
        app_ids = [c for c in _claim_ids(record.get("Actor")) if is_guid(c)]
        app_id = next((a for a in app_ids if names.application(a)), None) or (
            who if is_guid(who) else None
        )
        name = claims.get(1) or names.application(app_id) or who
        return Actor(
            type="app",
            id=who.removeprefix("ServicePrincipal_"),
            display_name=name,
            app_id=app_id,
            ip_address=ip,
        )
    if "\\" in who or lowered.startswith("sync_") or who.startswith("S-1-5-"):
        return Actor(type="system", id=user_key, display_name=who, ip_address=ip)
    if "@" in who:
        return Actor(
            type="user",
            id=user_key,
            user_principal_name=who,
            ip_address=ip,
            user_agent=user_agent,
        )
    user_type = text(record.get("UserType"))
    kind = {"3": "system", "4": "system", "5": "app", "6": "app"}.get(user_type or "", "user")
    return Actor(type=kind, id=user_key, display_name=who, ip_address=ip)  # type: ignore[arg-type]


def _claims(value: Any) -> dict[int, str]:
    """Actor/Target IdentityTypeValuePair claims: first value of each type (5 UPN, 1 name…)."""
    found: dict[int, str] = {}
    for claim in as_list(value):
        if isinstance(claim, str):
            found.setdefault(5 if "@" in claim else 1, claim)
            continue
        if not isinstance(claim, dict):
            continue
        claim_id = text(claim.get("ID"))
        kind = text(claim.get("Type"))
        if claim_id and kind and kind.isdigit():
            found.setdefault(int(kind), claim_id)
    return found


def _claim_ids(value: Any) -> list[str]:
    return [t for t in (text(c.get("ID")) for c in as_list(value) if isinstance(c, dict)) if t]


# --- families ---


def _family(record: Record) -> Callable[[Record], Parts]:
    family = _BY_RECORD_TYPE.get(record.record_type or "")
    if family is not None:
        return family
    workload = (record.workload or "").casefold()
    if workload in ("sharepoint", "onedrive"):
        return _sharepoint
    if workload == "exchange" and "-" in record.operation:
        return _cmdlet
    return _generic


def _generic(record: Record) -> Parts:
    parts = Parts()
    target = record.text("ObjectId")
    if target:
        parts.targets.append(Target(display_name=target))
        parts.slot(target=target)
    return parts


def _cmdlet(record: Record) -> Parts:
    """Exchange admin and Security & Compliance cmdlets: Parameters say what was run on what."""
    params = name_value_pairs(record.get("Parameters"))
    by_name = {name.casefold(): value for name, value in params}
    parts = Parts()
    identity = by_name.get("identity")
    object_id = record.text("ObjectId")
    target = (
        (identity if identity and "@" in identity and "\\" not in identity else None)
        or record.text("ModifiedObjectResolvedName")
        or (object_id.rsplit("/", 1)[-1] if object_id else None)
        or identity
        or by_name.get("name")
    )
    if record.key in _RULE_OPERATIONS:
        _inbox_rule(record, by_name, identity, object_id, parts)
        return parts
    member = by_name.get("user") or by_name.get("trustee") or by_name.get("member")
    parts.slot(
        target=target,
        member=member,
        rights=by_name.get("accessrights"),
        role=by_name.get("role"),
        group=identity if record.key.endswith("groupmember") else None,
    )
    if target:
        parts.targets.append(Target(type="Object", display_name=target))
    if member:
        parts.targets.append(Target(type="User", display_name=member))
    parts.detail = "; ".join(
        f"{name}={value}"
        for name, value in params
        if value and name.casefold() not in _QUIET_PARAMETERS and value != target
    )
    return parts


def _inbox_rule(
    record: Record,
    by_name: dict[str, str],
    identity: str | None,
    object_id: str | None,
    parts: Parts,
) -> None:
    mailbox = by_name.get("mailbox")
    rule = by_name.get("name")
    for reference in (identity, object_id):
        if reference and "\\" in reference:
            owner, _, name = reference.rpartition("\\")
            mailbox = mailbox or owner.rsplit("/", 1)[-1]
            rule = rule or name
    actions = [
        described
        for name, value in name_value_pairs(record.get("Parameters"))
        if value and (action := _RULE_ACTIONS.get(name.casefold())) and (described := action(value))
    ]
    parts.slot(target=mailbox, rule=rule, actions=", ".join(actions))
    if mailbox:
        parts.targets.append(Target(type="Mailbox", display_name=mailbox))


def _mailbox(record: Record) -> Parts:
    """Mailbox audit records: items, folders and rules inside one mailbox."""
    parts = Parts()
    item = as_dict(record.get("Item"))
    parent = as_dict(item.get("ParentFolder"))
    folder = text(as_dict(record.get("Folder")).get("Path")) or text(parent.get("Path"))
    owner = record.text("MailboxOwnerUPN")
    target = (
        record.text("SendAsUserSmtp")
        if record.key == "sendas"
        else record.text("SendOnBehalfOfUserSmtp")
        if record.key == "sendonbehalf"
        else None
    ) or owner
    subjects = [
        s
        for s in (text(as_dict(i).get("Subject")) for i in as_list(record.get("AffectedItems")))
        if s
    ]
    properties = {
        name: property_.get("Value")
        for property_ in map(as_dict, as_list(record.get("OperationProperties")))
        if (name := text(property_.get("Name")))
    }
    parts.slot(
        target=target,
        location=folder,
        destination=text(as_dict(record.get("DestFolder")).get("Path")),
        subject=text(item.get("Subject")),
        items=first_few(subjects, quote=True),
        member=text(parent.get("MemberUpn")),
        rights=text(parent.get("MemberRights")),
        query=record.text("QueryText"),
    )
    if record.key == "mailitemsaccessed":
        parts.detail = _mail_access(record, properties)
    elif record.key == "updateinboxrules":
        parts.detail = _rule_update(properties)
    if target:
        parts.targets.append(Target(type="Mailbox", display_name=target))
    return parts


def _mail_access(record: Record, properties: dict[str, Any]) -> str:
    access = text(properties.get("MailAccessType")) or ""
    folders = [as_dict(f) for f in as_list(record.get("Folders"))]
    paths = ", ".join(p for p in (text(f.get("Path")) for f in folders) if p)
    if access.casefold() == "bind":
        count = text(record.get("OperationCount"))
        if count is None:
            count = str(sum(len(as_list(f.get("FolderItems"))) for f in folders))
        noun = "message" if count == "1" else "messages"
        return f"Bind: {count} {noun}" + (f" in {paths}" if paths else "")
    return f"{access}: {paths}" if access and paths else access or paths


def _rule_update(properties: dict[str, Any]) -> str:
    name = text(properties.get("RuleName"))
    if not name:
        return ""
    change = _RULE_CHANGES.get((text(properties.get("RuleOperation")) or "").casefold(), "changed")
    actions: list[str] = []
    for action in as_list(properties.get("RuleActions")):
        action = as_dict(action)
        kind = (text(action.get("ActionType")) or "").casefold()
        described = _RULE_ACTION_TYPES.get(kind)
        if described is None:
            continue
        argument = ", ".join(list_of_text(action.get("Recipients"))) or text(action.get("Folder"))
        actions.append(described.format(argument or "?"))
    return f'{change} "{name}"' + (f" ({', '.join(actions)})" if actions else "")


def _site_url(value: str | None) -> str | None:
    return value.rstrip("/") if value else None


def _changes(value: Any) -> str:
    """ModifiedProperties (Name/OldValue/NewValue) as `Name from old to new`."""
    described: list[str] = []
    for change in as_list(value):
        change = as_dict(change)
        name = text(change.get("Name"))
        if not name:
            continue
        old, new = plain(change.get("OldValue")), plain(change.get("NewValue"))
        described.append(
            f"{name} from {old} to {new}" if old and new else f"{name} to {new}" if new else name
        )
    return "; ".join(described)


def _sharepoint(record: Record) -> Parts:
    """SharePoint and OneDrive: files, folders, pages, lists, sharing and site administration."""
    parts = Parts()
    site = _site_url(record.text("SiteUrl"))
    object_id = record.text("ObjectId")
    item_type = (record.text("ItemType") or "").casefold()
    name = record.text("SourceFileName") or record.text("ListTitle")
    if name is None and object_id and item_type != "site" and _site_url(object_id) != site:
        name = unquote(object_id.rstrip("/").rsplit("/", 1)[-1]) or None
    site = site or (_site_url(object_id) if item_type == "site" or not name else None)
    changes = _changes(record.get("ModifiedProperties"))
    target_party = record.text("TargetUserOrGroupName")
    party_type = (record.text("TargetUserOrGroupType") or "").casefold()
    site_admin = next(
        (
            plain(as_dict(c).get("NewValue"))
            for c in as_list(record.get("ModifiedProperties"))
            if text(as_dict(c).get("Name")) == "SiteAdmin"
        ),
        None,
    )
    member = None if party_type == "sharepointgroup" else (target_party or site_admin)
    parts.slot(
        target=name,
        location=site,
        destination=record.text("DestinationRelativeUrl"),
        new_name=record.text("DestinationFileName"),
        member=member,
        group=target_party if party_type == "sharepointgroup" else None,
        policy=record.text("PolicyName"),
        detail=changes,
    )
    parts.detail = changes
    if name:
        parts.targets.append(Target(type=item_type.title() or "File", display_name=name))
    if site:
        parts.targets.append(Target(type="Site", display_name=site))
    if target_party:
        parts.targets.append(Target(type="User", display_name=target_party))
    return parts


def _entra(record: Record) -> Parts:
    """Entra ID records of the Management Activity feed: directory changes and sign-ins."""
    parts = Parts()
    claims = _claims(record.get("Target"))
    changes: dict[str, tuple[str | None, str | None]] = {}
    for change in as_list(record.get("ModifiedProperties")):
        change = as_dict(change)
        change_name = text(change.get("Name"))
        if change_name:
            changes[change_name] = (plain(change.get("OldValue")), plain(change.get("NewValue")))
    object_id = record.text("ObjectId")
    if object_id and object_id.casefold() in _NOT_AN_ID:
        object_id = None
    upn = claims.get(5) or (object_id if object_id and "@" in object_id else None)
    target = upn or claims.get(1) or object_id
    role = _new_or_old(changes, "Role.DisplayName") or _new_or_old(changes, "AppRole.Value")
    scopes = _new_or_old(changes, "DelegatedPermissionGrant.Scope") or _consented_scopes(
        _new_or_old(changes, "ConsentAction.Permissions")
    )
    parts.slot(
        target=target,
        member=upn,
        role=role,
        group=_new_or_old(changes, "Group.DisplayName") or claims.get(1),
        detail=scopes or _new_or_old(changes, "Included Updated Properties"),
    )
    parts.detail = parts.values.get("detail", "")
    if target:
        parts.targets.append(Target(type="User" if upn else "Object", display_name=target))
    if record.record_type == "15":
        _sign_in(record, parts)
    return parts


def _new_or_old(changes: dict[str, tuple[str | None, str | None]], name: str) -> str | None:
    old, new = changes.get(name, (None, None))
    return new or old


def _consented_scopes(permissions: str | None) -> str | None:
    if not permissions or "Scope:" not in permissions:
        return None
    return permissions.split("Scope:", 1)[1].split(",", 1)[0].strip() or None


def _sign_in(record: Record, parts: Parts) -> None:
    names = record.section.names
    app_id = record.text("ApplicationId")
    error = record.text("ErrorNumber")
    logon_error = record.text("LogonError")
    parts.slot(app=names.application(app_id), detail=logon_error)
    parts.detail = logon_error or ""
    parts.details.update(
        {k: v for k, v in (("app_id", app_id), ("error_code", error)) if v and v != "0"}
    )
    if logon_error:
        parts.details["logon_error"] = logon_error
        status = text(record.get("ResultStatus"))
        parts.result_detail = "; ".join(x for x in (status, f"{error} {logon_error}".strip()) if x)


def _dlp(record: Record) -> Parts:
    """DLP rule matches, undos and false positives: about the user whose content matched."""
    parts = Parts()
    exchange = as_dict(record.get("ExchangeMetaData"))
    sharepoint = as_dict(record.get("SharePointMetaData"))
    policies = [as_dict(p) for p in as_list(record.get("PolicyDetails"))]
    rules = [as_dict(r) for p in policies for r in as_list(p.get("Rules"))]
    labels = record.section.labels.get("sensitive_types", {})
    types: list[str] = []
    for rule in rules:
        for found in as_list(as_dict(rule.get("ConditionsMatched")).get("SensitiveInformation")):
            found = as_dict(found)
            guid = text(found.get("SensitiveType"))
            name = text(found.get("SensitiveInformationTypeName")) or labels.get(guid or "") or guid
            if name and name not in types:
                types.append(name)
    policy_names = [n for n in (text(p.get("PolicyName")) for p in policies) if n]
    actions = list(dict.fromkeys(a for r in rules for a in list_of_text(r.get("Actions"))))
    exception = as_dict(record.get("ExceptionInfo"))
    file_name = text(sharepoint.get("FileName"))
    parts.affected = (
        text(exchange.get("From"))
        or text(sharepoint.get("From"))
        or text(sharepoint.get("FileOwner"))
    )
    parts.slot(
        subject=text(exchange.get("Subject")),
        target=file_name,
        location=_site_url(text(sharepoint.get("SiteCollectionUrl"))),
        policy=policy_names[0] if policy_names else None,
        sensitive_types=", ".join(types),
        detail=text(exception.get("Reason")),
    )
    parts.detail = parts.values.get("detail", "")
    parts.details.update(
        {
            k: v
            for k, v in (
                ("dlp_policy", policy_names[0] if policy_names else None),
                ("dlp_policies", policy_names if len(policy_names) > 1 else None),
                ("dlp_rules", [n for n in (text(r.get("RuleName")) for r in rules) if n]),
                ("dlp_actions", actions),
                ("sensitive_types", types),
                ("dlp_exception", text(exception.get("Reason"))),
                ("dlp_justification", text(exception.get("Justification"))),
            )
            if v
        }
    )
    if actions:
        parts.result_detail = ", ".join(actions)
    if file_name:
        parts.targets.append(Target(type="File", display_name=file_name))
    elif text(exchange.get("Subject")):
        parts.targets.append(Target(type="Message", display_name=text(exchange.get("Subject"))))
    return parts


def _endpoint_dlp(record: Record) -> Parts:
    parts = Parts()
    path = record.text("ObjectId")
    parts.slot(target=path, location=record.text("DeviceName"))
    if path:
        parts.targets.append(Target(type="File", display_name=path))
    return parts


def _alert(record: Record) -> Parts:
    """Security & Compliance alerts: about the user the alert is about, written by an agent."""
    parts = Parts()
    data = as_dict(record.get("Data"))
    entity = record.text("AlertEntityId")
    entity_type = (record.text("EntityType") or text(data.get("etype")) or "").casefold()
    user = (
        text(data.get("f3u"))
        or text(data.get("suid"))
        or (text(data.get("eid")) if entity_type == "user" else None)
        or (entity if entity_type == "user" else None)
    )
    parts.affected = user if user and "@" in user else None
    name, severity, status = record.text("Name"), record.text("Severity"), record.text("Status")
    parts.slot(target=entity or parts.affected, policy=name, severity=severity, status=status)
    parts.details.update(
        {
            k: v
            for k, v in (
                ("alert_name", name),
                ("alert_severity", severity),
                ("alert_status", status),
                ("alert_category", record.text("Category")),
            )
            if v
        }
    )
    if entity or parts.affected:
        parts.targets.append(
            Target(type=entity_type.title() or "Entity", display_name=entity or user)
        )
    return parts


def _teams(record: Record) -> Parts:
    parts = Parts()
    members: list[str] = []
    roles: list[str] = []
    for member in as_list(record.get("Members")):
        member = as_dict(member)
        name = text(member.get("UPN")) or text(member.get("DisplayName"))
        if name:
            members.append(name)
            roles.append(text(member.get("Role")) or "")
    actor = text(record.get("UserId"))
    if record.key == "chatcreated":
        members = [m for m in members if m != actor]
    team = record.text("TeamName")
    setting = record.text("Name")
    old, new = record.text("OldValue"), record.text("NewValue")
    change = (
        f"{setting} from {old} to {new}"
        if setting and old and new
        else f"{setting} to {new}"
        if setting and new
        else setting
    )
    role_labels = record.section.labels.get("teams_member_roles", {})
    parts.slot(
        team=team,
        channel=record.text("ChannelName"),
        members=first_few(members),
        member=members[0] if members else None,
        role=role_labels.get(roles[0]) if roles else None,
        app=record.text("AddOnName"),
        subject=record.text("ItemName"),
        detail=change,
    )
    parts.detail = change or (team or "")
    if not team and not members and record.text("ObjectId"):
        parts.slot(target=record.text("ObjectId"))
        parts.targets.append(Target(display_name=record.text("ObjectId")))
    if team:
        parts.targets.append(Target(type="Team", display_name=team))
    parts.targets += [Target(type="Member", display_name=m) for m in members]
    return parts


def _power_bi(record: Record) -> Parts:
    parts = Parts()
    recipients = [
        text(as_dict(s).get("RecipientEmail")) for s in as_list(record.get("SharingInformation"))
    ] + [text(as_dict(m).get("MemberEmail")) for m in as_list(record.get("MembershipInformation"))]
    target = (
        record.text("ReportName")
        or record.text("DatasetName")
        or record.text("ObjectDisplayName")
        or record.text("DashboardName")
        or record.text("ItemName")
    )
    export = text(as_dict(record.get("ExportedArtifactInfo")).get("ExportType"))
    parts.slot(
        target=target,
        location=record.text("WorkSpaceName"),
        members=", ".join(r for r in recipients if r),
        detail=export or record.text("ObjectType"),
    )
    parts.detail = parts.values.get("detail", "")
    if target:
        parts.targets.append(Target(type="PowerBIItem", display_name=target))
    return parts


def _named(
    field_name: str, location: str | None = None, detail: str | None = None
) -> Callable[[Record], Parts]:
    """A family whose records name their object in one field (Forms, Stream, Yammer…)."""

    def read(record: Record) -> Parts:
        parts = Parts()
        target = record.text(field_name)
        parts.slot(
            target=target,
            location=record.text(location) if location else None,
            group=record.text("GroupName"),
            detail=record.text(detail) if detail else None,
        )
        parts.detail = parts.values.get("detail", "")
        if target:
            parts.targets.append(Target(display_name=target))
        return parts

    return read


def _mip_label(record: Record) -> Parts:
    parts = Parts()
    parts.slot(subject=record.text("ItemName"), label=record.text("LabelName"))
    parts.targets += [
        Target(type="Recipient", display_name=r) for r in list_of_text(record.get("Receivers"))
    ]
    return parts


def _office_label(record: Record) -> Parts:
    parts = Parts()
    object_id = record.text("ObjectId")
    name = unquote(object_id.rstrip("/").rsplit("/", 1)[-1]) if object_id else None
    parts.slot(target=name, app=record.text("Application"))
    if name:
        parts.targets.append(Target(type="File", display_name=name))
    return parts


def _copilot(record: Record) -> Parts:
    parts = Parts()
    data = as_dict(record.get("CopilotEventData"))
    host = text(data.get("AppHost"))
    hosts = record.section.labels.get("copilot_hosts", {})
    context = next((as_dict(c) for c in as_list(data.get("Contexts"))), {})
    resources = [
        n
        for n in (
            text(as_dict(r).get("Name")) or text(as_dict(r).get("Id"))
            for r in as_list(data.get("AccessedResources"))
        )
        if n
    ]
    parts.slot(app=hosts.get(host or "", host), target=_context_name(context, hosts))
    parts.details.update(
        {k: v for k, v in (("copilot_app", host), ("copilot_resources", resources)) if v}
    )
    return parts


def _context_name(context: dict[str, Any], hosts: dict[str, str]) -> str | None:
    context_id = text(context.get("Id"))
    kind = text(context.get("Type"))
    if context_id and context_id.startswith("http"):
        query = parse_qs(urlsplit(context_id).query)
        if query.get("file"):
            return query["file"][0]
        return unquote(urlsplit(context_id).path.rsplit("/", 1)[-1]) or None
    return hosts.get(kind or "") if kind else None


def _threat_mail(record: Record) -> Parts:
    parts = Parts()
    recipients = list_of_text(record.get("Recipients"))
    parts.affected = recipients[0] if recipients else None
    action, location = record.text("DeliveryAction"), record.text("LatestDeliveryLocation")
    sender = record.text("P2Sender") or record.text("P1Sender")
    parts.slot(
        subject=record.text("Subject"),
        sender=sender,
        verdict=record.text("Verdict"),
        detail=", ".join(x for x in (action, location) if x),
    )
    parts.detail = parts.values.get("detail", "")
    parts.details.update(
        {
            k: v
            for k, v in (
                ("verdict", record.text("Verdict")),
                ("delivery_action", action),
                ("delivery_location", location),
                ("sender", sender),
                ("detection_method", record.text("DetectionMethod")),
            )
            if v
        }
    )
    parts.targets += [Target(type="Recipient", display_name=r) for r in recipients]
    return parts


def _url_click(record: Record) -> Parts:
    parts = Parts()
    labels = record.section.labels
    url = record.text("URL") or record.text("Url")
    click = record.text("URLClickAction")
    app = record.text("AppName")
    parts.slot(
        target=url,
        app=labels.get("click_apps", {}).get(app or "", app),
        detail=labels.get("url_click_actions", {}).get(click or "", click),
    )
    parts.detail = parts.values.get("detail", "")
    if url:
        parts.targets.append(Target(type="Url", display_name=url))
    return parts


def _file_threat(record: Record) -> Parts:
    parts = Parts()
    data = as_dict(record.get("FileData"))
    name = text(data.get("FileName"))
    parts.affected = record.text("LastModifiedBy")
    parts.slot(
        target=name, location=text(data.get("FilePath")), detail=text(data.get("MalwareFamily"))
    )
    parts.detail = parts.values.get("detail", "")
    parts.details.update(
        {k: v for k, v in (("malware_family", text(data.get("MalwareFamily"))),) if v}
    )
    if name:
        parts.targets.append(Target(type="File", display_name=name))
    return parts


def _submission(record: Record) -> Parts:
    parts = Parts()
    parts.slot(
        subject=record.text("SubmissionContent") or record.text("Subject"),
        sender=record.text("P1Sender") or record.text("Sender"),
        verdict=record.text("ReportedAs") or record.text("SubmissionType"),
    )
    return parts


def _investigation(record: Record) -> Parts:
    parts = Parts()
    parts.slot(target=record.text("InvestigationName"), detail=record.text("Status"))
    parts.detail = parts.values.get("detail", "")
    return parts


def _quarantine(record: Record) -> Parts:
    parts = Parts()
    parts.slot(member=record.text("ReleaseTo"))
    return parts


def _flow(record: Record) -> Parts:
    parts = Parts()
    parts.slot(detail=record.text("FlowConnectorNames"))
    parts.detail = parts.values.get("detail", "")
    return parts


def _dynamics(record: Record) -> Parts:
    parts = Parts()
    target = record.text("PrimaryFieldValue")
    parts.slot(target=target, location=record.text("InstanceUrl"), detail=record.text("EntityName"))
    parts.detail = parts.values.get("detail", "")
    if target:
        parts.targets.append(Target(type=record.text("EntityName"), display_name=target))
    return parts


_BY_RECORD_TYPE: dict[str, Callable[[Record], Parts]] = {
    "1": _cmdlet,
    "18": _cmdlet,
    "2": _mailbox,
    "3": _mailbox,
    "50": _mailbox,
    "101": _mailbox,
    **{rt: _sharepoint for rt in ("4", "6", "7", "14", "36", "37", "54", "55", "56", "71", "83")},
    "8": _entra,
    "9": _entra,
    "15": _entra,
    "11": _dlp,
    "13": _dlp,
    "33": _dlp,
    "107": _dlp,
    "63": _endpoint_dlp,
    "40": _alert,
    "24": _generic,
    "25": _teams,
    "57": _teams,
    "20": _power_bi,
    "22": _named("FileName", detail="DataExportType"),
    "66": _named("FormName"),
    "32": _named("ResourceTitle"),
    "43": _mip_label,
    "70": _office_label,
    "261": _copilot,
    "28": _threat_mail,
    "41": _url_click,
    "47": _file_threat,
    "29": _submission,
    "64": _investigation,
    "65": _quarantine,
    "30": _flow,
    "45": _named("AppName"),
    "21": _dynamics,
    "216": _named("ObjectId", detail="Detail"),
}
