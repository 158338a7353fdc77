"""Builders for the alerter's tests: fixture events normalized by the real normalizer core, and
variations of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aoc_common.events import CanonicalEvent, event_id_for
from aoc_common.rules import Alert, Rule


def a_variant(event: CanonicalEvent, key: str, *, at: datetime | None = None, **changes: Any):
    """The same admin action as another record (new dedupe key and id), optionally at another time."""
    return event.model_copy(
        update={
            "dedupe_key": key,
            "id": event_id_for(key),
            "timestamp": at or event.timestamp,
            **changes,
        }
    )


def a_burst(event: CanonicalEvent, count: int, *, every: timedelta, prefix: str = "burst"):
    """`count` copies of one action, `every` apart, as distinct records."""
    return [a_variant(event, f"{prefix}:{n}", at=event.timestamp + n * every) for n in range(count)]


def a_rule(**fields: Any) -> Rule:
    """A rule from plain values; `match` defaults to every successful Set-Mailbox."""
    document: dict[str, Any] = {
        "id": "rule-test",
        "name": "Test rule",
        "severity": "medium",
        "match": {"all": [{"field": "operation", "op": "equals", "value": "Set-Mailbox"}]},
    }
    document.update(fields)
    return Rule.model_validate(document)


def an_open_alert(alert_id: str) -> Alert:
    """An open high-severity alert with no events, for tests of who may read or acknowledge it."""
    return Alert(
        id=alert_id,
        rule_id="privileged-role-member-added",
        rule_name="Member added to a privileged role",
        severity="high",
        status="open",
        created_at=datetime(2026, 11, 20, tzinfo=UTC),
        summary="alice added bob to Global Administrator",
        event_ids=[],
    )
