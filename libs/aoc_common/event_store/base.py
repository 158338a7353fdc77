"""The event store interface: what the store sink and the API need from a database.

Two implementations pass one contract suite (tests/contract/test_event_store_contract.py): MongoDB
through motor for production, and SQLite for one machine. For the same query both return the same
events in the same order: newest first by (timestamp, id), with the filter semantics documented on
`EventQuery`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from aoc_common.events import CanonicalEvent, Comment
from aoc_common.query import EventPage, EventQuery, FilterOptions, UpsertResult
from aoc_common.rules import Alert, AlertCount, AlertPage, AlertQuery, Rule

# Filter-option lists are for dropdowns: bounded so that a tenant with 100k actors answers fast.
MAX_FILTER_OPTIONS = 500


class StoreError(RuntimeError):
    """The store could not be reached or refused the operation."""


# --- Narrow views: each service depends on the one it uses (the engines implement them all). ---


class EventReader(Protocol):
    """Reading events: the API, MCP and ask."""

    async def query_events(self, query: EventQuery) -> EventPage: ...
    async def get_event(self, event_id: str) -> CanonicalEvent | None: ...
    async def count_events(self) -> int: ...
    async def filter_options(self) -> FilterOptions: ...
    async def count_by_interval(
        self, query: EventQuery, start: datetime, interval_ms: int, buckets: int
    ) -> list[int]: ...


class EventWriter(Protocol):
    """Writing events: the store sink (upserts) and the API (analysts' tags and comments)."""

    async def upsert_events(self, events: Sequence[CanonicalEvent]) -> UpsertResult: ...
    async def set_tags(self, event_id: str, tags: Sequence[str]) -> CanonicalEvent | None: ...
    async def add_comment(self, event_id: str, comment: Comment) -> CanonicalEvent | None: ...
    async def purge_expired(self, now: datetime | None = None) -> int: ...


class StateStore(Protocol):
    """Small service state: collector watermarks and fetched content ids, source health."""

    async def get_state(self, key: str) -> dict[str, Any] | None: ...
    async def put_state(self, key: str, value: dict[str, Any]) -> None: ...


class RuleStore(Protocol):
    """Alert rules: the alerter reads them, the API edits them."""

    async def list_rules(self) -> list[Rule]: ...
    async def get_rule(self, rule_id: str) -> Rule | None: ...
    async def put_rule(self, rule: Rule) -> None: ...
    async def delete_rule(self, rule_id: str) -> bool: ...


class AlertStore(Protocol):
    """Alerts: the alerter inserts them, the API lists and acknowledges them."""

    async def insert_alerts(self, alerts: Sequence[Alert]) -> list[str]: ...
    async def existing_alert_ids(self, alert_ids: Sequence[str]) -> set[str]: ...
    async def query_alerts(self, query: AlertQuery) -> AlertPage: ...
    async def get_alert(self, alert_id: str) -> Alert | None: ...
    async def acknowledge_alert(self, alert_id: str, by: str, at: datetime) -> Alert | None: ...
    async def alert_counts(self) -> list[AlertCount]: ...


class EventStore(ABC):
    """A connection to the event database, implementing every narrow view above.

    `start` creates indexes and applies retention. Code that only reads events should be typed with
    `EventReader`, the alerter with `RuleStore` + `AlertStore`, and so on: an engine class stays one
    class, but a service states what it needs.
    """

    engine: str

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise StoreError when the database cannot be reached."""

    @abstractmethod
    async def upsert_events(self, events: Sequence[CanonicalEvent]) -> UpsertResult:
        """Insert or update by `dedupe_key`, in one round trip per batch.

        An update replaces what Microsoft reported but keeps what analysts added (tags, comments)
        and the event's `id`. Within one batch, a later event with the same key wins.
        """

    @abstractmethod
    async def query_events(self, query: EventQuery) -> EventPage: ...

    @abstractmethod
    async def get_event(self, event_id: str) -> CanonicalEvent | None: ...

    @abstractmethod
    async def count_events(self) -> int: ...

    @abstractmethod
    async def filter_options(self) -> FilterOptions:
        """Distinct services, operations, results, sources, actors and tags, sorted."""

    @abstractmethod
    async def set_tags(self, event_id: str, tags: Sequence[str]) -> CanonicalEvent | None:
        """Replace an event's tags; None when there is no such event."""

    @abstractmethod
    async def add_comment(self, event_id: str, comment: Comment) -> CanonicalEvent | None:
        """Append a comment; None when there is no such event."""

    @abstractmethod
    async def purge_expired(self, now: datetime | None = None) -> int:
        """Delete events ingested more than RETENTION_DAYS ago; returns how many went.

        MongoDB's TTL index does this by itself (this method then only reports 0); SQLite needs a
        call.
        """

    @abstractmethod
    async def count_by_interval(
        self, query: EventQuery, start: datetime, interval_ms: int, buckets: int
    ) -> list[int]:
        """How many events match `query` (filters only; cursor and page size ignored) in each of
        `buckets` consecutive intervals of `interval_ms` from `start`, for the UI's histogram.
        One indexed pass in SQLite, one indexed count per interval in MongoDB."""

    @abstractmethod
    async def get_state(self, key: str) -> dict[str, Any] | None:
        """Small service state (collector watermarks, fetched content ids) beside the events."""

    @abstractmethod
    async def put_state(self, key: str, value: dict[str, Any]) -> None: ...

    # --- alert rules and alerts (the alerter writes alerts, the API reads them and edits rules) ---

    @abstractmethod
    async def list_rules(self) -> list[Rule]:
        """Every rule, sorted by name then id."""

    @abstractmethod
    async def get_rule(self, rule_id: str) -> Rule | None: ...

    @abstractmethod
    async def put_rule(self, rule: Rule) -> None:
        """Create or replace the rule with this id."""

    @abstractmethod
    async def delete_rule(self, rule_id: str) -> bool:
        """False when there was no such rule."""

    @abstractmethod
    async def insert_alerts(self, alerts: Sequence[Alert]) -> list[str]:
        """Insert the alerts whose id is not stored yet; returns the ids actually inserted.

        Alert ids are derived from the rule and the triggering events, so re-reading the same events
        (a replay, a redelivered batch) never stores an alert twice, and never reopens one that an
        analyst acknowledged.
        """

    @abstractmethod
    async def existing_alert_ids(self, alert_ids: Sequence[str]) -> set[str]:
        """Which of these ids are already stored."""

    @abstractmethod
    async def query_alerts(self, query: AlertQuery) -> AlertPage:
        """Newest first by (created_at, id); filters combined with AND."""

    @abstractmethod
    async def get_alert(self, alert_id: str) -> Alert | None: ...

    @abstractmethod
    async def acknowledge_alert(self, alert_id: str, by: str, at: datetime) -> Alert | None:
        """Mark an open alert acknowledged; an acknowledged one is returned unchanged (the first
        acknowledgement is the one kept). None when there is no such alert."""

    @abstractmethod
    async def alert_counts(self) -> list[AlertCount]:
        """How many alerts per (rule id, rule name, severity, status), sorted by rule name, rule id,
        severity and status; counted by the database, never by reading the alerts."""


def dedupe_last_wins(events: Sequence[CanonicalEvent]) -> list[CanonicalEvent]:
    """Keep the last event per dedupe_key, in first-seen order."""
    latest: dict[str, CanonicalEvent] = {}
    for event in events:
        latest[event.dedupe_key] = event
    return list(latest.values())
