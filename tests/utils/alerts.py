"""Builders for the alerter's tests: fixture events normalized by the real normalizer core, and
variations of them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aoc_common.events import CanonicalEvent, event_id_for
from aoc_common.rules import Rule


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
