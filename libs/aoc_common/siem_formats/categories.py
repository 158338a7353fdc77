"""What kind of action a canonical event records, read once for both ECS and OCSF: the verb of its
operation (create / delete / change / read…) and the family it belongs to (sign-in, user, group,
role, policy, file, mail, configuration), and who a user is by name, id and address. Pure and cheap:
it runs on every forwarded event."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from aoc_common.events import CanonicalEvent

Verb = Literal["create", "delete", "change", "read", "enable", "disable", "other"]
Family = Literal[
    "signin", "user", "group", "role", "policy", "application", "device", "file", "mail", "config"
]

_VERBS: tuple[tuple[Verb, re.Pattern[str]], ...] = (
    ("create", re.compile(r"^(add|create|new|register|invite|upload|file ?uploaded|enroll)", re.I)),
    (
        "delete",
        re.compile(r"^(delete|remove|hard ?delete|soft ?delete|file ?deleted|unenroll)", re.I),
    ),
    ("enable", re.compile(r"^(enable|activate|restore)", re.I)),
    ("disable", re.compile(r"^(disable|deactivate|block|suspend)", re.I)),
    (
        "read",
        re.compile(
            r"^(get|read|list|view|search|file ?(accessed|downloaded|previewed)|mailitemsaccessed)",
            re.I,
        ),
    ),
    (
        "change",
        re.compile(
            r"^(update|set|change|reset|modify|consent|assign|move|rename|file ?modified|edit|grant|revoke|wipe|retire|sync|patch)",
            re.I,
        ),
    ),
)
# Management Activity operations name the result in the past tense: `TeamCreated`, `MemberAdded`.
_PAST: tuple[tuple[Verb, re.Pattern[str]], ...] = (
    ("create", re.compile(r"(Added|Created|Uploaded|Enrolled)$")),
    ("delete", re.compile(r"(Deleted|Removed|Recycled)$")),
    ("change", re.compile(r"(Changed|Updated|Modified|Renamed|Moved|Set)$")),
    ("read", re.compile(r"(Accessed|Downloaded|Viewed|Previewed|Searched)$")),
)
_FILE_OPERATION = re.compile(r"^(File|Folder)", re.I)
_MAIL_SENT = {"send", "sendas", "sendonbehalf"}


@lru_cache(maxsize=4096)  # operations repeat: one answer per spelling
def verb_of(operation: str) -> Verb:
    """`New-InboxRule` → create; `Delete user.` → delete; `FileAccessed` → read."""
    text = operation.strip()
    if "-" in text and text[:1].isupper():  # an Exchange cmdlet: Verb-Noun
        text = text.split("-", 1)[0]
    for verb, pattern in _VERBS:
        if pattern.search(text):
            return verb
    for verb, pattern in _PAST:
        if pattern.search(text.rstrip(".")):
            return verb
    return "other"


def family_of(event: CanonicalEvent) -> Family:
    if event.source == "signins":
        return "signin"
    category = event.category.casefold()
    raw = event.raw
    if event.source == "directory":
        raw_category = str(raw.get("category", "")).casefold()
        if raw_category == "usermanagement":
            return "user"
        if raw_category == "groupmanagement":
            return "group"
        if raw_category == "rolemanagement":
            return "role"
        if raw_category in ("policy", "authorization"):
            return "policy"
        if raw_category == "applicationmanagement":
            return "application"
        if raw_category == "device":
            return "device"
        return "config"
    if event.source == "intune":
        return "device" if "device" in category else "config"
    workload = str(raw.get("Workload", "")).casefold()
    operation = event.operation
    if workload in ("sharepoint", "onedrive") and _FILE_OPERATION.match(operation):
        return "file"
    if workload == "exchange" and operation.casefold() in _MAIL_SENT:
        return "mail"
    if workload == "azureactivedirectory":
        lowered = operation.casefold()
        if "role" in lowered:
            return "role"
        if "group" in lowered:
            return "group"
        if "user" in lowered or "password" in lowered:
            return "user"
    return "config"


@lru_cache(maxsize=4096)  # a tenant's events come from a few thousand addresses
def ip_address_of(value: str | None) -> str | None:
    """The address as ECS and OCSF want it (`[::1]` → `::1`), or None when it is not one."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip().strip("[]")))
    except ValueError:
        return None


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Person:
    """A user as both formats name one: `name` is what a SIEM searches for (the sign-in name when
    there is one), `full_name` the display name when it says more, `email` only a real address —
    OCSF's model rejects anything else, and an ECS `user.email` that is not one misleads."""

    name: str | None
    full_name: str | None
    email: str | None
    id: str | None

    @property
    def domain(self) -> str | None:
        return self.email.rpartition("@")[2] if self.email else None


def person_of(upn: str | None, display_name: str | None, user_id: str | None) -> Person:
    name = upn or display_name or None
    full_name = display_name if display_name and display_name != name else None
    email = upn if upn and EMAIL.match(upn) else None
    return Person(name, full_name, email, user_id or None)
