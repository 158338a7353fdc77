"""A canonical event as an OCSF 1.7.0 event, for Security Lake, Splunk and the other OCSF consumers.

The class follows the source and the action (`categories`): Entra sign-ins → Authentication (3002);
Entra directory audits → Account Change (3001, users), Group Management (3006, groups and roles:
roles as privileges) or Entity Management (3004, policies, applications, devices…); Intune audits →
Entity Management; Management Activity records → File Hosting Activity (6006, SharePoint and OneDrive
file operations), Email Activity (4009, mail sent) or API Activity (6003, everything else: cmdlets,
admin and user actions). The record exactly as Microsoft sent it is `raw_data`; AOC's own reading
of it (category, result detail, details) is `unmapped`. Activity and class captions come from the
OCSF schema pydantic-ocsf ships; tests validate every emitted event with its 1.7.0 models.

Built as plain dicts (not through the models) so that forwarding stays fast; the models are the
tests' judge, on every sample and corpus record.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from typing import Any

from aoc_common.events import CanonicalEvent
from aoc_common.query import timestamp_ms
from aoc_common.siem_formats.categories import (
    EMAIL,
    Family,
    Verb,
    family_of,
    ip_address_of,
    person_of,
    verb_of,
)

OCSF_VERSION = "1.7.0"

# class name in the schema → (class_uid, category_uid, category caption)
CLASSES: dict[str, tuple[int, int, str]] = {
    "account_change": (3001, 3, "Identity & Access Management"),
    "authentication": (3002, 3, "Identity & Access Management"),
    "entity_management": (3004, 3, "Identity & Access Management"),
    "group_management": (3006, 3, "Identity & Access Management"),
    "email_activity": (4009, 4, "Network Activity"),
    "api_activity": (6003, 6, "Application Activity"),
    "file_hosting": (6006, 6, "Application Activity"),
}
_STATUS = {"success": (1, "Success"), "failure": (2, "Failure"), "partial": (99, "Partial")}
_CRUD: dict[Verb, int] = {
    "create": 1,
    "read": 2,
    "change": 3,
    "enable": 3,
    "disable": 3,
    "delete": 4,
}
_ENTITY: dict[Verb, int] = {
    "create": 1, "read": 2, "change": 3, "delete": 4, "enable": 8, "disable": 9,
}  # fmt: skip
_ACCOUNT: dict[Verb, int] = {"create": 1, "enable": 2, "disable": 5, "delete": 6}
_FILE_ACTIVITIES = {
    "fileuploaded": 1, "filedownloaded": 2, "filemodified": 3, "filedeleted": 4,
    "filerenamed": 5, "filecopied": 6, "filemoved": 7, "filerestored": 8, "filepreviewed": 9,
    "filecheckedout": 10, "filecheckedin": 11, "fileaccessed": 14, "filesyncdownloadedfull": 15,
    "filesyncuploadedfull": 15,
}  # fmt: skip


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    """The OCSF 1.7.0 schema as pydantic-ocsf ships it (class and activity captions)."""
    text = files("ocsf").joinpath("schemas/v1_7_0.json").read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=64)
def class_caption(name: str) -> str:
    return str(_schema()["events"][name]["caption"])


@lru_cache(maxsize=512)
def activity_caption(name: str, activity_id: int) -> str:
    if activity_id == 99:
        return "Other"
    events = _schema()["events"]
    while name:
        enum = events[name]["attributes"].get("activity_id", {}).get("enum", {})
        if str(activity_id) in enum:
            return str(enum[str(activity_id)]["caption"])
        name = events[name].get("extends", "")
    return "Other"


def class_and_activity(event: CanonicalEvent) -> tuple[str, int]:
    """Which OCSF class an event is, and its activity in that class."""
    family: Family = family_of(event)
    verb = verb_of(event.operation)
    operation = event.operation.casefold().rstrip(".")
    if family == "signin":
        return "authentication", 1  # Logon
    if event.source == "unified":
        if family == "file":
            return "file_hosting", _FILE_ACTIVITIES.get(operation, _CRUD.get(verb, 99))
        if family == "mail":
            return "email_activity", 1  # Send
        return "api_activity", _CRUD.get(verb, 99)
    if event.source == "directory" and family == "user":
        if "password" in operation:
            return "account_change", 4 if "reset" in operation else 3
        return "account_change", _ACCOUNT.get(verb, 99)
    if event.source == "directory" and family in ("group", "role"):
        member = "member" in operation or "owner" in operation
        if family == "role":
            return "group_management", {"create": 1, "delete": 2}.get(verb, 99) if member else 99
        if member:
            return "group_management", {"create": 3, "delete": 4}.get(verb, 99)
        return "group_management", {"create": 6, "delete": 5}.get(verb, 99)
    return "entity_management", _ENTITY.get(verb, 99)


def to_ocsf(event: CanonicalEvent) -> dict[str, Any]:
    name, activity_id = class_and_activity(event)
    class_uid, category_uid, category_name = CLASSES[name]
    status_id, status = _STATUS.get(event.result, (0, "Unknown"))
    document: dict[str, Any] = {
        "class_uid": class_uid,
        "class_name": class_caption(name),
        "category_uid": category_uid,
        "category_name": category_name,
        "activity_id": activity_id,
        "activity_name": activity_caption(name, activity_id),
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_caption(name)}: {activity_caption(name, activity_id)}",
        "time": timestamp_ms(event.timestamp),
        "severity_id": 1,
        "severity": "Informational",
        "status_id": status_id,
        "status": status,
        "message": event.display_summary,
        "metadata": _metadata(event),
        "raw_data": event.raw_text,
        "unmapped": _unmapped(event),
    }
    if event.result_detail:
        document["status_detail"] = event.result_detail
    user = _user(event.actor.user_principal_name, event.actor_display, event.actor.id)
    endpoint = _endpoint(event)
    if name == "authentication":
        document["user"] = user or {"name": event.actor_display}
        app = event.details.get("app")
        if isinstance(app, str) and app:
            document["service"] = {"name": app}
    elif name != "email_activity":  # Email Activity has no actor: the sender is `email.from`
        document["actor"] = {"user": user} if user else {"app_name": event.actor_display}
    if endpoint:
        document["src_endpoint"] = endpoint
    if event.actor.user_agent:
        document["http_request"] = {"user_agent": event.actor.user_agent}
    _class_fields(name, event, document, endpoint)
    return document


def _class_fields(
    name: str, event: CanonicalEvent, document: dict[str, Any], endpoint: dict[str, Any]
) -> None:
    target = event.targets[0] if event.targets else None
    target_name = (
        (target.display_name or target.user_principal_name or target.id) if target else None
    )
    if name == "api_activity":
        workload = str(event.raw.get("Workload") or event.service)
        document["api"] = {"operation": event.operation, "service": {"name": workload}}
        document.setdefault("src_endpoint", endpoint or {"name": workload})
    elif name == "file_hosting":
        document["file"] = {
            "name": str(event.raw.get("SourceFileName") or target_name or event.operation),
            "type_id": 1,
            **({"path": str(event.raw["ObjectId"])} if event.raw.get("ObjectId") else {}),
        }
        document.setdefault("src_endpoint", endpoint or {"name": event.service})
    elif name == "email_activity":
        document["direction_id"] = 2  # outbound: sent from the organisation's mailbox
        document["email"] = {"uid": str(event.raw.get("Id") or event.id)}
        sender = event.actor.user_principal_name
        if sender and EMAIL.match(sender):
            document["email"]["from"] = sender
    elif name == "account_change":
        subject = target if target is not None else None
        document["user"] = (
            _user(subject.user_principal_name, subject.display_name, subject.id)
            if subject is not None
            else {}
        ) or {"name": event.actor_display}
    elif name == "group_management":
        group = next(
            (t for t in event.targets if (t.type or "").casefold() in ("group", "role")), None
        )
        member = next((t for t in event.targets if (t.type or "").casefold() == "user"), None)
        document["group"] = {
            "name": (group.display_name or group.id or "unknown")
            if group
            else (target_name or "unknown"),
            **({"uid": group.id} if group is not None and group.id else {}),
            **({"type": group.type} if group is not None and group.type else {}),
        }
        if member is not None:
            member_user = _user(member.user_principal_name, member.display_name, member.id)
            if member_user:
                document["user"] = member_user
        if group is not None and (group.type or "").casefold() == "role" and group.display_name:
            document["privileges"] = [group.display_name]
    elif name == "entity_management":
        document["entity"] = {
            "name": target_name or event.operation,
            **({"uid": target.id} if target is not None and target.id else {}),
            **({"type": target.type} if target is not None and target.type else {}),
        }


def _metadata(event: CanonicalEvent) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "version": OCSF_VERSION,
        "product": {"name": event.service, "vendor_name": "Microsoft"},
        "uid": event.id,
        "log_name": event.source,
        "log_provider": "AOC",
        "logged_time": timestamp_ms(event.ingested_at),
        "original_event_uid": event.dedupe_key.split(":", 1)[-1],
    }
    if event.tenant_id:
        metadata["tenant_uid"] = event.tenant_id
    if event.tags:
        metadata["labels"] = list(event.tags)
    return metadata


def _unmapped(event: CanonicalEvent) -> dict[str, Any]:
    unmapped: dict[str, Any] = {
        "aoc_category": event.category,
        "aoc_result": event.result,
        "aoc_source": event.source,
    }
    if event.details:
        unmapped["aoc_details"] = dict(event.details)
    return unmapped


def _user(upn: str | None, name: str | None, user_id: str | None) -> dict[str, Any]:
    person = person_of(upn, name, user_id)
    user = {
        "name": person.name,
        "full_name": person.full_name,
        "email_addr": person.email,
        "uid": person.id,
    }
    return {field: value for field, value in user.items() if value}


def _endpoint(event: CanonicalEvent) -> dict[str, Any]:
    address = event.actor.ip_address
    endpoint: dict[str, Any] = {}
    ip = ip_address_of(address)
    if ip:
        endpoint["ip"] = ip
    location = event.actor.location
    if endpoint and location is not None:
        place: dict[str, Any] = {}
        if location.city:
            place["city"] = location.city
        if location.state:
            place["region"] = location.state
        country = location.country_or_region
        if country and len(country) == 2 and country.isalpha():
            place["country"] = country.upper()
        if place:
            endpoint["location"] = place
    return endpoint
