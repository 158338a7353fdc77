"""The typed event query every store answers, and the opaque paging cursor.

Queries are a model, not a database dialect: the API validates user input into `EventQuery`, and
each store translates it. Paging is keyset paging on (timestamp, id), newest first, so that events
inserted while an analyst pages never make a page skip or repeat an event.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aoc_common.events import CanonicalEvent, Source, to_utc_millis
from aoc_common.search import event_terms, query_tokens

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
# The instants a datetime can hold (years 1 to 9999): a cursor outside them was not made by us, and
# letting it through would overflow a store's conversion instead of answering 400.
MIN_TIMESTAMP_MS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _MILLISECOND
MAX_TIMESTAMP_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // _MILLISECOND


class InvalidCursor(ValueError):
    """The cursor was not produced by this API (tampered, truncated or from another version)."""


class Cursor(BaseModel):
    """Position after the last event of a page."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timestamp_ms: int = Field(ge=MIN_TIMESTAMP_MS, le=MAX_TIMESTAMP_MS)
    id: str = Field(max_length=200)

    def encode(self) -> str:
        packed = orjson.dumps([self.timestamp_ms, self.id])
        return base64.urlsafe_b64encode(packed).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            padded = token + "=" * (-len(token) % 4)
            timestamp_ms, event_id = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
            if not isinstance(timestamp_ms, int) or not isinstance(event_id, str):
                raise TypeError
            return cls(timestamp_ms=timestamp_ms, id=event_id)
        except (ValueError, TypeError, binascii.Error) as error:
            raise InvalidCursor("cursor is not valid; start again without it") from error

    @classmethod
    def after(cls, event: CanonicalEvent) -> Cursor:
        return cls(timestamp_ms=timestamp_ms(event.timestamp), id=event.id)


def timestamp_ms(value: datetime) -> int:
    """Epoch milliseconds, in integer arithmetic: `timestamp() * 1000` is a float and lands one
    millisecond low for some instants (in 2004, from 2038), and a cursor one millisecond early
    skips the other events of the last event's millisecond."""
    return (to_utc_millis(value) - _EPOCH) // _MILLISECOND


class EventQuery(BaseModel):
    """Filters (all optional, combined with AND) plus paging."""

    model_config = ConfigDict(extra="forbid")

    service: str | None = Field(default=None, max_length=200)
    source: Source | None = None
    actor: str | None = Field(
        default=None, max_length=200, description="Case-insensitive substring"
    )
    operation: str | None = Field(default=None, max_length=200)
    result: str | None = Field(default=None, max_length=20)
    start: datetime | None = None
    end: datetime | None = None
    search: str | None = Field(default=None, max_length=500)
    tags: list[str] = Field(default_factory=list, max_length=10)
    cursor: Cursor | None = None
    page_size: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else to_utc_millis(value)

    @property
    def search_tokens(self) -> list[str]:
        return query_tokens(self.search) if self.search else []

    @property
    def matches_nothing(self) -> bool:
        """A search with no letters or digits (say `.*` or `"()"`) cannot match any indexed
        token. (`(a+)+$` is not one: it searches for the word prefix `a`.)"""
        return bool(self.search and self.search.strip()) and not self.search_tokens


class EventPage(BaseModel):
    items: list[CanonicalEvent]
    next_cursor: str | None = None


class FilterOptions(BaseModel):
    services: list[str]
    operations: list[str]
    results: list[str]
    sources: list[str]
    actors: list[str]
    tags: list[str]


class UpsertResult(BaseModel):
    inserted: int = 0
    updated: int = 0

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(
            inserted=self.inserted + other.inserted, updated=self.updated + other.updated
        )


def page_from(rows: list[CanonicalEvent], page_size: int) -> EventPage:
    """Stores fetch page_size + 1 rows; the extra row only tells whether there is a next page."""
    items = rows[:page_size]
    more = len(rows) > page_size
    return EventPage(items=items, next_cursor=Cursor.after(items[-1]).encode() if more else None)


def search_terms_for(event: CanonicalEvent) -> list[str]:
    """The tokens a store indexes for `search`; every store must index exactly these."""
    return event_terms(
        (
            event.display_summary,
            event.actor_display,
            *event.target_displays,
            event.operation,
            event.service,
            event.category,
        ),
        event.raw_text,
    )
