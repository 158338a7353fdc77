"""A canonical event as an Elastic Common Schema (ECS 9.4) document, for SIEMs that speak ECS.

Field set as Elastic documents it: `@timestamp`, `event.*` (kind, category and type from ECS's allowed
values, action, outcome, provider, dataset, reason, original = the record exactly as Microsoft sent
it), `user.*` (the actor) and `user.target.*`, `source.ip` / `source.geo.*`, `user_agent.original`,
`cloud.*`, `organization.id`, `related.*`, `tags`, `message`. Values ECS types strictly (an `ip`
field holds an address, a country code two letters) are only set when they are such values.
"""

from __future__ import annotations

from typing import Any

from aoc_common.events import CanonicalEvent
from aoc_common.siem_formats.categories import (
    Family,
    Verb,
    family_of,
    ip_address_of,
    person_of,
    verb_of,
)

ECS_VERSION = "9.4.0"
_OUTCOMES = {"success": "success", "failure": "failure"}

# (event.category, extra event.type) per family; the verb adds creation / deletion / change…
_CATEGORY: dict[Family, tuple[str, tuple[str, ...]]] = {
    "signin": ("authentication", ("start",)),
    "user": ("iam", ("user",)),
    "group": ("iam", ("group",)),
    "role": ("iam", ("admin",)),
    "policy": ("configuration", ()),
    "application": ("iam", ()),
    "device": ("configuration", ()),
    "file": ("file", ()),
    "mail": ("email", ("info",)),
    "config": ("configuration", ()),
}
_VERB_TYPE: dict[Verb, str] = {
    "create": "creation",
    "delete": "deletion",
    "change": "change",
    "enable": "change",
    "disable": "change",
    "read": "access",
    "other": "info",
}
# event.type values ECS expects with each category (the rest are left out rather than invalid).
_EXPECTED = {
    "authentication": {"start", "end", "info"},
    "iam": {"admin", "change", "creation", "deletion", "group", "info", "user"},
    "configuration": {"access", "change", "creation", "deletion", "info"},
    "file": {"access", "change", "creation", "deletion", "info"},
    "email": {"info"},
}


def _types(category: str, extra: tuple[str, ...], verb: Verb) -> list[str]:
    wanted = (
        [*extra, _VERB_TYPE[verb]] if category not in ("authentication", "email") else list(extra)
    )
    allowed = _EXPECTED[category]
    return list(dict.fromkeys(t for t in wanted if t in allowed)) or ["info"]


def to_ecs(event: CanonicalEvent) -> dict[str, Any]:
    family = family_of(event)
    category, extra = _CATEGORY[family]
    actor = event.actor
    document: dict[str, Any] = {
        "@timestamp": event.timestamp.isoformat().replace("+00:00", "Z"),
        "ecs": {"version": ECS_VERSION},
        "message": event.display_summary,
        "event": {
            "kind": "event",
            "category": [category],
            "type": _types(category, extra, verb_of(event.operation)),
            "action": event.operation,
            "outcome": _OUTCOMES.get(event.result, "unknown"),
            "provider": event.service,
            "dataset": f"m365.{event.source}",
            "module": "m365",
            "id": event.id,
            "ingested": event.ingested_at.isoformat().replace("+00:00", "Z"),
            "original": event.raw_text,
        },
        "cloud": {"provider": "azure", "service": {"name": event.service}},
    }
    if event.result_detail:
        document["event"]["reason"] = event.result_detail
    if event.tenant_id:
        document["cloud"]["account"] = {"id": event.tenant_id}
        document["organization"] = {"id": event.tenant_id}
    user = _user(actor.user_principal_name, actor.display_name or event.actor_display, actor.id)
    target = next((t for t in event.targets if t.user_principal_name or t.display_name), None)
    if target is not None:
        target_user = _user(target.user_principal_name, target.display_name, target.id)
        if target_user:
            user["target"] = target_user
    if user:
        document["user"] = user
    ip = ip_address_of(actor.ip_address)
    if ip is not None:
        source: dict[str, Any] = {"ip": ip}
        geo = _geo(actor.location)
        if geo:
            source["geo"] = geo
        document["source"] = source
    if actor.user_agent:
        document["user_agent"] = {"original": actor.user_agent}
    related_users = [
        name
        for name in (actor.user_principal_name, *(t.user_principal_name for t in event.targets))
        if name
    ]
    related: dict[str, list[str]] = {}
    if related_users:
        related["user"] = list(dict.fromkeys(related_users))
    if ip is not None:
        related["ip"] = [ip]
    if related:
        document["related"] = related
    if event.tags:
        document["tags"] = list(event.tags)
    return document


def _user(upn: str | None, name: str | None, user_id: str | None) -> dict[str, Any]:
    person = person_of(upn, name, user_id)
    user = {
        "name": person.name,
        "full_name": person.full_name,
        "email": person.email,
        "domain": person.domain,
        "id": person.id,
    }
    return {field: value for field, value in user.items() if value}


def _geo(location: Any) -> dict[str, Any]:
    if location is None:
        return {}
    geo: dict[str, Any] = {}
    if location.city:
        geo["city_name"] = location.city
    if location.state:
        geo["region_name"] = location.state
    country = location.country_or_region
    if country and len(country) == 2 and country.isalpha():
        geo["country_iso_code"] = country.upper()
    elif country:
        geo["country_name"] = country
    return geo
