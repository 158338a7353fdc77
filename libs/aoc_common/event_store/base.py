"""The event store interface: what the store sink, the API, the alerter and the collector need from a
database, as five narrow views.

Two engines implement every view and pass one contract suite (tests/contract/
test_event_store_contract.py): MongoDB through motor for production, and SQLite for one machine.
For the same query both return the same events in the same order (by (timestamp, id), newest or
oldest first) and the same counts, with the filter semantics documented on `EventFilters`.

A service states the view it uses: the API's event routes and MCP take an `EventReader`, the store
sink an `EventWriter`, the collector a `StateStore`, the alerter a `RuleStore` and an `AlertStore`.
`EventStore` is the engines' base class: it inherits every view (so a type checker holds each
engine to every method below) and adds the lifecycle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from aoc_common.event_store.encoded import EncodedEvent
from aoc_common.events import CanonicalEvent, Comment
from aoc_common.query import (
    DEFAULT_COUNT_LIMIT,
    DEFAULT_FACET_SAMPLE,
    FACET_FIELDS,
    FACET_FILTERS,
    EventFilters,
    EventPage,
    EventQuery,
    FacetCounts,
    FilterOptions,
    MatchCount,
    UpsertResult,
)
from aoc_common.rules import Alert, AlertCount, AlertPage, AlertQuery, Rule

# Filter-option lists are for dropdowns: bounded so that a tenant with 100k actors answers fast.
MAX_FILTER_OPTIONS = 500


class StoreError(RuntimeError):
    """The store could not be reached or refused the operation."""


# --- Narrow views: each service depends on the one it uses (the engines implement them all). ---


class StoreLifecycle(Protocol):
    """Opening and closing a store: whoever builds a service owns this, not the service."""

    @abstractmethod
    async def start(self) -> None:
        """Connect (or open the file), create what is missing (tables, indexes) and apply
        retention. Calling it on a started store does nothing."""

    @abstractmethod
    async def stop(self) -> None:
        """Release the connection; a stopped store raises StoreError on use."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise StoreError when the database cannot be reached."""


class EventReader(Protocol):
    """Reading events: the API's event routes, export, facets, MCP and ask."""

    @abstractmethod
    async def query_events(self, query: EventQuery) -> EventPage:
        """One page of matching events in `query.order`, by (timestamp, id), with the cursor of
        the next page when there is one."""

    @abstractmethod
    async def get_event(self, event_id: str) -> CanonicalEvent | None:
        """The whole event (with analysts' tags and comments); None when there is no such id."""

    @abstractmethod
    async def count_events(self) -> int:
        """Every stored event, cheaply (collection metadata in MongoDB)."""

    @abstractmethod
    async def count_matching(
        self, filters: EventFilters, limit: int = DEFAULT_COUNT_LIMIT
    ) -> MatchCount:
        """How many events match `filters`: exact up to `limit`; beyond it
        `MatchCount(limit, exact=False)` ("10,000+"). Counting stops at the bound, so the cost
        never grows with the store."""

    @abstractmethod
    async def facet_counts(
        self,
        filters: EventFilters,
        fields: Sequence[str] = FACET_FIELDS,
        top: int = 10,
        sample: int | None = DEFAULT_FACET_SAMPLE,
    ) -> FacetCounts:
        """The `top` values of each of `fields` (names from `FACET_FIELDS`) with how many
        matching events carry them, most frequent first, ties by value.

        Counted in the store (an aggregation, never a page scan in Python) over the newest
        `sample` matching events, or over all of them when `sample` is None; the answer says
        which (`counted`, `complete`). An event carrying several tags counts once per tag."""

    @abstractmethod
    async def filter_options(self) -> FilterOptions:
        """Distinct services, operations, results, sources, actors and tags, sorted, each list
        bounded by MAX_FILTER_OPTIONS."""

    @abstractmethod
    async def count_by_interval(
        self, filters: EventFilters, start: datetime, interval_ms: int, buckets: int
    ) -> list[int]:
        """How many events match `filters` (a cursor, page size or order is ignored) in each of
        `buckets` consecutive intervals of `interval_ms` from `start`, for the histogram."""

    async def count_by_interval_split(
        self,
        filters: EventFilters,
        start: datetime,
        interval_ms: int,
        buckets: int,
        field: str,
        values: Sequence[str],
    ) -> tuple[list[int], list[list[int]]]:
        """`count_by_interval` of the events matching `filters`, and of those whose `field` (a
        value filter of `FACET_FILTERS`) has each of `values`, for the overview's stacked chart.
        Asked once per value here; the embedded store counts them all in one walk of its time
        index."""
        wanted = FACET_FILTERS[field][0]
        totals = await self.count_by_interval(filters, start, interval_ms, buckets)
        per_value = [
            await self.count_by_interval(
                filters.model_copy(update={wanted: [value]}), start, interval_ms, buckets
            )
            for value in values
        ]
        return totals, per_value


class EventWriter(Protocol):
    """Writing events: the store sink (upserts, retention) and the API (analysts' tags, comments)."""

    @abstractmethod
    async def upsert_events(self, events: Sequence[CanonicalEvent]) -> UpsertResult:
        """Insert or update by `dedupe_key`, in one transaction / bulk write per batch.

        An update replaces what Microsoft reported but keeps what analysts added (tags, comments)
        and the event's `id`. Within one batch, a later event with the same key wins.
        """

    @abstractmethod
    async def upsert_encoded(self, events: Sequence[EncodedEvent]) -> UpsertResult:
        """`upsert_events` for events as the normalizer published them (JSON plus the fields a
        store indexes), so the sink never rebuilds and re-serialises a validated event."""

    def prepare_upsert(self, events: Sequence[EncodedEvent]) -> PreparedUpsert:
        """The pure-Python half of `upsert_encoded` (no I/O, any thread): a sink prepares the
        next batch while the store writes this one with `upsert_prepared`."""
        return PreparedUpsert(dedupe_last_wins(events))

    async def upsert_prepared(self, prepared: PreparedUpsert) -> UpsertResult:
        """Write a batch `prepare_upsert` made ready: `upsert_encoded` of its events."""
        return await self.upsert_encoded(prepared.events)

    @abstractmethod
    async def set_tags(self, event_id: str, tags: Sequence[str]) -> CanonicalEvent | None:
        """Replace an event's tags (duplicates dropped); None when there is no such event."""

    @abstractmethod
    async def add_comment(self, event_id: str, comment: Comment) -> CanonicalEvent | None:
        """Append a comment; None when there is no such event."""

    @abstractmethod
    async def purge_expired(self, now: datetime | None = None) -> int:
        """Delete events ingested more than RETENTION_DAYS ago; returns how many went.

        MongoDB's TTL index does this by itself (this method then only reports 0); SQLite needs a
        call, which the store sink makes hourly.
        """


class StateStore(Protocol):
    """Small service state beside the events: collector watermarks, fetched content ids, source
    health. Values are JSON objects and read back exactly as their JSON round trip."""

    @abstractmethod
    async def get_state(self, key: str) -> dict[str, Any] | None:
        """The value stored under `key`; None when nothing is."""

    @abstractmethod
    async def put_state(self, key: str, value: dict[str, Any]) -> None:
        """Create or replace the value under `key`."""


class RuleStore(Protocol):
    """Alert rules: the alerter reads them, the API edits them."""

    @abstractmethod
    async def list_rules(self) -> list[Rule]:
        """Every rule, sorted by name then id."""

    @abstractmethod
    async def get_rule(self, rule_id: str) -> Rule | None:
        """The rule with this id; None when there is none."""

    @abstractmethod
    async def put_rule(self, rule: Rule) -> None:
        """Create or replace the rule with this id."""

    @abstractmethod
    async def delete_rule(self, rule_id: str) -> bool:
        """False when there was no such rule."""


class AlertStore(Protocol):
    """Alerts: the alerter inserts them, the API lists and acknowledges them."""

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
    async def get_alert(self, alert_id: str) -> Alert | None:
        """The alert with this id; None when there is none."""

    @abstractmethod
    async def acknowledge_alert(self, alert_id: str, by: str, at: datetime) -> Alert | None:
        """Mark an open alert acknowledged; an acknowledged one is returned unchanged (the first
        acknowledgement is the one kept). None when there is no such alert."""

    @abstractmethod
    async def alert_counts(self) -> list[AlertCount]:
        """How many alerts per (rule id, rule name, severity, status), sorted by rule name, rule id,
        severity and status; counted by the database (one grouped query), never by reading the
        alerts."""


class EventStore(StoreLifecycle, EventReader, EventWriter, StateStore, RuleStore, AlertStore, ABC):
    """A connection to the event database, implementing every narrow view above.

    `start` creates indexes and applies retention. Code that only reads events should be typed with
    `EventReader`, the alerter with `RuleStore` + `AlertStore`, and so on: an engine class stays one
    class, but a service states what it needs. An engine that misses a method of any view cannot
    be instantiated (every view method is abstract).
    """

    engine: str


@dataclass(frozen=True, eq=False)
class PreparedUpsert:
    """A batch of events made ready for one store's write (`EventWriter.prepare_upsert`): one
    event per dedupe key (the last wins), in first-seen order; a store adds what it computes."""

    events: list[EncodedEvent]


def dedupe_last_wins(events: Sequence[EncodedEvent]) -> list[EncodedEvent]:
    """Keep the last event per dedupe_key, in first-seen order."""
    latest: dict[str, EncodedEvent] = {}
    for event in events:
        latest[event.fields.dedupe_key] = event
    return list(latest.values())
