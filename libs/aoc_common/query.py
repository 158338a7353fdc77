"""The typed event query every store answers, and the opaque paging cursor.

Queries are a model, not a database dialect: the API validates user input into `EventQuery`, and
each store translates it. Paging is keyset paging on (timestamp, id), newest first, so that events
inserted while an analyst pages never make a page skip or repeat an event.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from aoc_common.events import CanonicalEvent, Result, Source, to_utc_millis
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


MAX_CURSOR_LENGTH = 400
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"


def _decoded_cursor(value: Any) -> Any:
    """A cursor given as its token (a query string, a JSON body, a tool argument) is decoded here,
    so that a bad token is a validation error naming `cursor` like any other bad input."""
    if isinstance(value, str):
        if len(value) > MAX_CURSOR_LENGTH or not re.fullmatch(CURSOR_PATTERN, value):
            raise InvalidCursor("cursor is not valid; start again without it")
        return Cursor.decode(value)
    return value


# How every query model takes a cursor: as the opaque token `next_cursor` handed out (or a
# `Cursor`), documented as the string it is and serialized back to that string.
CursorToken = Annotated[
    Cursor | None,
    BeforeValidator(_decoded_cursor),
    PlainSerializer(lambda cursor: cursor.encode() if cursor is not None else None),
    WithJsonSchema(
        {
            "type": "string",
            "format": "aoc-cursor",
            "pattern": CURSOR_PATTERN,
            "minLength": 1,
            "maxLength": MAX_CURSOR_LENGTH,
            "description": "`next_cursor` of the previous page, as it was handed out (opaque)",
        }
    ),
]


def timestamp_ms(value: datetime) -> int:
    """Epoch milliseconds, in integer arithmetic: `timestamp() * 1000` is a float and lands one
    millisecond low for some instants (in 2004, from 2038), and a cursor one millisecond early
    skips the other events of the last event's millisecond."""
    return (to_utc_millis(value) - _EPOCH) // _MILLISECOND


# Dates an audit log can hold. Anything outside is a typo or a probe, and far-off years overflow
# date arithmetic (a UTC conversion of 9999-12-31T23:59:59-14:00) instead of answering 422.
EARLIEST_FILTER_YEAR = 1970
LATEST_FILTER_YEAR = 2999
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
# A written date's own year (before any zone is applied) is what the bound is about; the document
# states it with this same pattern.
_FILTER_YEAR_PATTERN = r"^(19[7-9][0-9]|2[0-9]{3})-"
_YEAR_FIRST = re.compile(r"^[0-9]{4}-")
_OUT_OF_RANGE = f"date must be between {EARLIEST_FILTER_YEAR}-01-01 and {LATEST_FILTER_YEAR}-12-31"
# Once in UTC, a bounded date lies within a day of those years (zones reach ±14 h).
_EARLIEST_UTC = datetime(EARLIEST_FILTER_YEAR - 1, 12, 31, tzinfo=UTC)
_LATEST_UTC = datetime(LATEST_FILTER_YEAR + 1, 1, 2, tzinfo=UTC)


def _not_a_number(value: Any) -> Any:
    """Pydantic reads 1700000000 (and "0.5") as epoch seconds; a filter wants an ISO 8601 date,
    written in the bounded years."""
    if isinstance(value, bool | int | float) or (isinstance(value, str) and _NUMBER.match(value)):
        raise ValueError("expected an ISO 8601 date or date-time (e.g. 2026-11-29T08:00:00Z)")
    if (
        isinstance(value, str)
        and _YEAR_FIRST.match(value)
        and not re.match(_FILTER_YEAR_PATTERN, value)
    ):
        raise ValueError(_OUT_OF_RANGE)
    return value


def _bounded_utc(value: datetime | None) -> datetime | None:
    """In UTC. The year is checked before the conversion (which is what overflows), loosely enough
    that a date already converted (say 1969-12-31T22:00Z, from 1970-01-01T00:00+02:00) passes
    again unchanged."""
    if value is None:
        return None
    if not EARLIEST_FILTER_YEAR - 1 <= value.year <= LATEST_FILTER_YEAR + 1:
        raise ValueError(_OUT_OF_RANGE)
    utc = to_utc_millis(value)
    if not _EARLIEST_UTC <= utc < _LATEST_UTC:
        raise ValueError(_OUT_OF_RANGE)
    return utc


# The document states what the validators above accept: an ISO 8601 date or date-time (a missing
# zone is UTC) in the bounded years; a number is not a date.
_FILTER_DATE_SCHEMA = {
    "anyOf": [
        {"type": "string", "format": "date-time", "pattern": _FILTER_YEAR_PATTERN},
        {"type": "string", "format": "date", "pattern": _FILTER_YEAR_PATTERN},
        {"type": "null"},
    ]
}
FilterDate = Annotated[
    datetime | None,
    BeforeValidator(_not_a_number),
    AfterValidator(_bounded_utc),
    WithJsonSchema(_FILTER_DATE_SCHEMA),
]


class EventFilters(BaseModel):
    """Which events: the one filter contract of `/api/events`, the histogram, export, MCP, `/api/ask`
    and alert queries. All optional, combined with AND.

    Declared once here; the API takes it as a query-parameter model, MCP tools and the ask model
    validate into it, and every store translates it. A field added here is a filter everywhere.
    """

    model_config = ConfigDict(extra="forbid")

    service: str | None = Field(
        default=None, max_length=200, description="Exact service label, e.g. Exchange"
    )
    source: Source | None = Field(default=None, description="Which Microsoft log")
    actor: str | None = Field(
        default=None, max_length=200, description="Case-insensitive part of the actor"
    )
    operation: str | None = Field(default=None, max_length=200, description="Exact operation name")
    result: Result | None = Field(default=None, description="success | failure | partial | unknown")
    start: FilterDate = Field(
        default=None, description="Earliest timestamp (ISO 8601; UTC when it has no zone)"
    )
    end: FilterDate = Field(
        default=None, description="Latest timestamp (ISO 8601), not before `start`"
    )
    search: str | None = Field(
        default=None, max_length=500, description="Words; each must start a word of the event"
    )
    tags: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list, max_length=10, description="Events carrying every tag"
    )

    @field_validator("end")
    @classmethod
    def _not_before_start(cls, end: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("start")
        if end is not None and start is not None and start > end:
            raise ValueError("end is before start")
        return end

    @property
    def search_tokens(self) -> list[str]:
        return query_tokens(self.search) if self.search else []

    @property
    def matches_nothing(self) -> bool:
        """A search with no letters or digits (say `.*` or `"()"`) cannot match any indexed
        token. (`(a+)+$` is not one: it searches for the word prefix `a`.)"""
        return bool(self.search and self.search.strip()) and not self.search_tokens

    def filters_only(self) -> EventFilters:
        """Just the filters (an `EventQuery` without its paging)."""
        return EventFilters.model_validate(
            {name: getattr(self, name) for name in EventFilters.model_fields}
        )


class EventQuery(EventFilters):
    """Filters plus paging: what a store's `query_events` answers."""

    cursor: CursorToken = None
    page_size: int = Field(
        default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Events per page"
    )

    @classmethod
    def of(cls, filters: EventFilters, **paging: Any) -> EventQuery:
        """`filters` with paging (cursor, page_size) added."""
        return cls.model_validate({**filters.model_dump(), **paging})


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
