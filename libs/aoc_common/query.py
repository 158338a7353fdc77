"""The typed event query every store answers, and the opaque paging cursor.

Queries are a model, not a database dialect: the API validates user input into `EventQuery`, and
each store translates it. Paging is keyset paging on (timestamp, id), newest first by default or
oldest first (`order`), so that events inserted while an analyst pages never make a page skip or
repeat an event.

Filter shape (the same in a query string, a JSON body, an MCP call):
- one-value fields (`service`, `operation`, `result`, `source`, `category`, `actor_type`,
  `actor_display`) take any number of values and match **any of them** (`service=Exchange` or
  `service=Exchange&service=Intune`; in JSON a string or a list). `exclude_<field>` takes values
  the event must match **none of**. Both are exact.
- `tags` must **all** be on the event; `exclude_tags` must **none** be on it.
- `actor` is the case-insensitive part of an actor's name (a text box), `search` the words that
  must each start a word of the event, `start`/`end` an inclusive time range.
A facet value is clicked "in" by adding it to its include parameter and "out" by adding it to its
exclude parameter (`FACET_FILTERS` maps each facet field to the two).
"""

from __future__ import annotations

import base64
import binascii
import heapq
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

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
    model_validator,
)

from aoc_common.events import ActorType, CanonicalEvent, Result, Source, to_utc_millis
from aoc_common.search import event_terms, query_tokens

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50

Order = Literal["newest", "oldest"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
# The instants a datetime can hold (years 1 to 9999): a cursor outside them was not made by us, and
# letting it through would overflow a store's conversion instead of answering 400.
MIN_TIMESTAMP_MS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _MILLISECOND
MAX_TIMESTAMP_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // _MILLISECOND


class InvalidCursor(ValueError):
    """The cursor was not produced by this API (tampered, truncated or from another version)."""


class Cursor(BaseModel):
    """Position after the last event of a page, in the order the page was read.

    The order is part of the cursor: a position "after" an event means the opposite thing in the
    other order, so a cursor handed out for newest-first pages is refused for oldest-first ones.
    A newest-first cursor encodes as `[timestamp_ms, id]`, as cursors always have.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timestamp_ms: int = Field(ge=MIN_TIMESTAMP_MS, le=MAX_TIMESTAMP_MS)
    id: str = Field(max_length=200)
    order: Order = "newest"

    def encode(self) -> str:
        fields: list[Any] = [self.timestamp_ms, self.id]
        if self.order != "newest":
            fields.append(self.order)
        packed = orjson.dumps(fields)
        return base64.urlsafe_b64encode(packed).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            padded = token + "=" * (-len(token) % 4)
            timestamp_ms, event_id, *rest = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
            if not isinstance(timestamp_ms, int) or not isinstance(event_id, str):
                raise TypeError
            if rest not in ([], ["oldest"]):
                raise TypeError
            return cls(timestamp_ms=timestamp_ms, id=event_id, order=rest[0] if rest else "newest")
        except (ValueError, TypeError, binascii.Error) as error:
            raise InvalidCursor("cursor is not valid; start again without it") from error

    @classmethod
    def after(cls, event: CanonicalEvent, order: Order = "newest") -> Cursor:
        return cls(timestamp_ms=timestamp_ms(event.timestamp), id=event.id, order=order)


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

# Values one multi-value filter may list: enough for any facet click sequence, small enough that
# a query stays a handful of bound parameters.
MAX_FILTER_VALUES = 50


def _one_or_many(value: Any) -> Any:
    """`service=Exchange` (one value, as every client has always sent) and a list both work."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return value


def _distinct(values: list[Any]) -> list[Any]:
    """Repeats dropped (after the length bound, which is on the values as sent)."""
    return list(dict.fromkeys(values))


Label = Annotated[str, Field(max_length=200)]
AnyOf = Annotated[
    list[Label],
    BeforeValidator(_one_or_many),
    Field(max_length=MAX_FILTER_VALUES),
    AfterValidator(_distinct),
]
AnyResult = Annotated[
    list[Result],
    BeforeValidator(_one_or_many),
    Field(max_length=MAX_FILTER_VALUES),
    AfterValidator(_distinct),
]
AnySource = Annotated[
    list[Source],
    BeforeValidator(_one_or_many),
    Field(max_length=MAX_FILTER_VALUES),
    AfterValidator(_distinct),
]
AnyActorType = Annotated[
    list[ActorType],
    BeforeValidator(_one_or_many),
    Field(max_length=MAX_FILTER_VALUES),
    AfterValidator(_distinct),
]
TagList = Annotated[
    list[Annotated[str, Field(max_length=100)]],
    BeforeValidator(_one_or_many),
    Field(max_length=10),
    AfterValidator(_distinct),
]

# The one-value fields filtered by exact value: each has `<field>` (any of) and
# `exclude_<field>` (none of), and each is a column (SQLite) or a document field (MongoDB).
VALUE_FILTERS = (
    "service",
    "operation",
    "result",
    "source",
    "category",
    "actor_type",
    "actor_display",
)

# Fields `facet_counts` counts values of. "actor" is the actor's display name (`actor_display`).
FacetField = Literal[
    "service", "operation", "result", "actor", "category", "source", "tags", "actor_type"
]
FACET_FIELDS: tuple[FacetField, ...] = (
    "service",
    "operation",
    "result",
    "actor",
    "category",
    "source",
    "tags",
    "actor_type",
)
# Facet field -> (filter parameter that keeps a value, filter parameter that excludes it).
FACET_FILTERS: dict[str, tuple[str, str]] = {
    **{field: (field, f"exclude_{field}") for field in FACET_FIELDS},
    "actor": ("actor_display", "exclude_actor_display"),
}


def _name_the_sources(schema: dict[str, Any]) -> None:
    """What each source id means, from the registry (imported late: the sources use this module)."""
    from aoc_common.sources import source_descriptions

    schema["description"] = f"{schema.get('description', '')} ({source_descriptions()})"


class EventFilters(BaseModel):
    """Which events: the one filter contract of `/api/events`, the histogram, export, facets,
    counts, MCP, `/api/ask` and alert queries. All optional, combined with AND (see the module
    docstring for the shape of multi-value and exclusion filters).

    Declared once here; the API takes it as a query-parameter model, MCP tools and the ask model
    validate into it, and every store translates it. A field added here is a filter everywhere,
    and the contract suite holds every store to it.
    """

    model_config = ConfigDict(extra="forbid")

    service: AnyOf = Field(
        default_factory=list, description="Service labels, any of (exact), e.g. Exchange"
    )
    exclude_service: AnyOf = Field(default_factory=list, description="Service labels to leave out")
    source: AnySource = Field(
        default_factory=list,
        description="Which Microsoft logs, any of",
        json_schema_extra=_name_the_sources,
    )
    exclude_source: AnySource = Field(default_factory=list, description="Logs to leave out")
    operation: AnyOf = Field(default_factory=list, description="Operation names, any of (exact)")
    exclude_operation: AnyOf = Field(default_factory=list, description="Operations to leave out")
    result: AnyResult = Field(
        default_factory=list, description="success | failure | partial | unknown, any of"
    )
    exclude_result: AnyResult = Field(default_factory=list, description="Results to leave out")
    category: AnyOf = Field(
        default_factory=list, description="Categories, any of (exact), e.g. UserManagement"
    )
    exclude_category: AnyOf = Field(default_factory=list, description="Categories to leave out")
    actor_type: AnyActorType = Field(
        default_factory=list, description="user | app | system | unknown, any of"
    )
    exclude_actor_type: AnyActorType = Field(
        default_factory=list, description="Actor types to leave out"
    )
    actor: str | None = Field(
        default=None, max_length=200, description="Case-insensitive part of the actor"
    )
    actor_display: AnyOf = Field(
        default_factory=list, description="Actors by exact display name, any of (facet clicks)"
    )
    exclude_actor_display: AnyOf = Field(
        default_factory=list, description="Actors by exact display name to leave out"
    )
    start: FilterDate = Field(
        default=None, description="Earliest timestamp (ISO 8601; UTC when it has no zone)"
    )
    end: FilterDate = Field(
        default=None, description="Latest timestamp (ISO 8601), not before `start`"
    )
    search: str | None = Field(
        default=None, max_length=500, description="Words; each must start a word of the event"
    )
    tags: TagList = Field(default_factory=list, description="Events carrying every tag")
    exclude_tags: TagList = Field(
        default_factory=list, description="Events carrying none of these tags"
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
        token. (`(a+)+$` is not one: it searches for the word prefix `a`.) Neither can a tag that
        is both required and excluded, nor a field whose every wanted value is excluded."""
        if bool(self.search and self.search.strip()) and not self.search_tokens:
            return True
        if set(self.tags) & set(self.exclude_tags):
            return True
        return any(
            (wanted := self.values_of(field)) and set(wanted) <= set(self.excluded_of(field))
            for field in VALUE_FILTERS
        )

    def values_of(self, field: str) -> list[str]:
        """The wanted values of a `VALUE_FILTERS` field (empty: any value)."""
        values: list[str] = getattr(self, field)
        return values

    def excluded_of(self, field: str) -> list[str]:
        """The excluded values of a `VALUE_FILTERS` field."""
        values: list[str] = getattr(self, f"exclude_{field}")
        return values

    def filters_only(self) -> EventFilters:
        """Just the filters (an `EventQuery` without its paging)."""
        return EventFilters.model_validate(
            {name: getattr(self, name) for name in EventFilters.model_fields}
        )


class EventQuery(EventFilters):
    """Filters plus paging: what a store's `query_events` answers.

    `order` is newest (default) or oldest first, by (timestamp, id) either way. `cursor` (a
    `Cursor` or its token) continues a previous page in the same order; a cursor from the other
    order is refused.
    """

    cursor: CursorToken = None
    page_size: int = Field(
        default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Events per page"
    )
    order: Order = Field(default="newest", description="newest | oldest first")

    @model_validator(mode="after")
    def _cursor_in_this_order(self) -> EventQuery:
        if self.cursor is not None and self.cursor.order != self.order:
            raise ValueError(
                f"this cursor continues {self.cursor.order}-first pages: ask with "
                f"order={self.cursor.order}, or start again without the cursor"
            )
        return self

    @classmethod
    def of(cls, filters: EventFilters, **paging: Any) -> EventQuery:
        """`filters` with paging (cursor, page_size, order) added."""
        return cls.model_validate({**filters.filters_only().model_dump(), **paging})


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


# `count_matching` counts exactly up to this many matches by default, then says "10,000+".
DEFAULT_COUNT_LIMIT = 10_000
MAX_COUNT_LIMIT = 1_000_000


class MatchCount(BaseModel):
    """How many events match: exact when `exact`, else at least `value` (shown as "10,000+")."""

    value: int = Field(ge=0)
    exact: bool

    @property
    def label(self) -> str:
        return f"{self.value:,}" if self.exact else f"{self.value:,}+"


class FacetValue(BaseModel):
    value: str
    count: int = Field(ge=0)


# `facet_counts` counts the newest this-many matching events unless asked otherwise (as Kibana
# Discover's field list does with its sample of 500): enough to show what dominates (a value in 10 %
# of the sample is known to within ±0.8 % at 5,000, ±0.6 % at 10,000, 95 % of the time), bounded
# in time. The bound is the latency goal (p95 < 50 ms at a million events): on the embedded store
# a sample costs 1.5-3 µs an event to read whatever the plan, and the newest 10,000 matches of a
# word in 8 % of events took 60 ms of CPU (bench/README.md, session 6). A caller may ask for up to 10,000
# (`/api/events/facets?sample=`); the answer says how many were counted.
DEFAULT_FACET_SAMPLE = 5_000
MAX_FACET_SAMPLE = 10_000
MAX_FACET_TOP = 100


class FacetCounts(BaseModel):
    """Top values per field, counted over `counted` events: all the matching events when
    `complete`, else the newest `counted` of them (say so beside the numbers)."""

    facets: dict[str, list[FacetValue]]
    counted: int = Field(ge=0)
    complete: bool


def check_count_limit(limit: int) -> None:
    """Counting bounds come from users through the API: refuse what no store should run."""
    if not 1 <= limit <= MAX_COUNT_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_COUNT_LIMIT}")


def check_facet_request(fields: Sequence[str], top: int, sample: int | None) -> None:
    """Facet arguments come from users through the API: refuse what no store should run."""
    unknown = [field for field in fields if field not in FACET_FIELDS]
    if unknown:
        raise ValueError(f"unknown facet field {unknown[0]!r}; known: {', '.join(FACET_FIELDS)}")
    if not 1 <= top <= MAX_FACET_TOP:
        raise ValueError(f"top must be between 1 and {MAX_FACET_TOP}")
    if sample is not None and not 1 <= sample <= MAX_COUNT_LIMIT:
        raise ValueError(f"sample must be between 1 and {MAX_COUNT_LIMIT}")


def top_values(values: Iterable[str], top: int) -> list[FacetValue]:
    """The `top` most frequent values, most frequent first, ties by value (binary order: both
    stores sort strings by their UTF-8 bytes, which is code point order)."""
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return top_counts(counts, top)


def top_counts(counts: Mapping[str, int], top: int) -> list[FacetValue]:
    """`top_values` of values already counted."""
    ranked = heapq.nsmallest(top, counts.items(), key=lambda item: (-item[1], item[0]))
    return [FacetValue(value=value, count=count) for value, count in ranked]


class UpsertResult(BaseModel):
    inserted: int = 0
    updated: int = 0

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(
            inserted=self.inserted + other.inserted, updated=self.updated + other.updated
        )


def page_from(rows: list[CanonicalEvent], page_size: int, order: Order = "newest") -> EventPage:
    """Stores fetch page_size + 1 rows; the extra row only tells whether there is a next page."""
    items = rows[:page_size]
    more = len(rows) > page_size
    return EventPage(
        items=items, next_cursor=Cursor.after(items[-1], order).encode() if more else None
    )


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
