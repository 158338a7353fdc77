"""Event search and lookup. Every parameter is validated into `EventQuery`; nothing reaches a database
as a raw string operator or regular expression."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from aoc_api.auth import Principal, require_writer
from aoc_api.dependencies import get_store
from aoc_api.histogram import EventHistogram, HistogramWindow, histogram_window
from aoc_api.notes import CommentRequest, TagsRequest
from aoc_common.event_store.base import EventStore
from aoc_common.events import CanonicalEvent, Comment, utc_now
from aoc_common.query import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Cursor,
    EventPage,
    EventQuery,
    FilterOptions,
    InvalidCursor,
)
from aoc_common.sources import source_descriptions, source_vocabulary

router = APIRouter(prefix="/api")
SOURCE_DESCRIPTION = f"Which Microsoft log: {source_vocabulary()} ({source_descriptions()})"
FILTER_OPTIONS_TTL_S = 10.0
EVENT_QUERY_PARAMETERS = frozenset(
    {
        "service",
        "source",
        "actor",
        "operation",
        "result",
        "start",
        "end",
        "search",
        "tags",
        "cursor",
        "page_size",
    }
)


def _invalid(parameter: str, message: str, value: Any = None) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", parameter), "msg": message, "type": "value_error", "input": value}]
    )


ServiceFilter = Annotated[str | None, Query(description="Exact service label, e.g. Exchange")]
SourceFilter = Annotated[str | None, Query(description=SOURCE_DESCRIPTION)]
ActorFilter = Annotated[str | None, Query(description="Case-insensitive part of the actor")]
OperationFilter = Annotated[str | None, Query(description="Exact operation name")]
ResultFilter = Annotated[str | None, Query(description="success | failure | unknown")]
StartFilter = Annotated[datetime | None, Query(description="Earliest timestamp (ISO 8601)")]
EndFilter = Annotated[datetime | None, Query(description="Latest timestamp (ISO 8601)")]
SearchFilter = Annotated[
    str | None, Query(description="Words; each must start a word of the event")
]
TagsFilter = Annotated[list[str] | None, Query(description="Events carrying every tag")]
HISTOGRAM_QUERY_PARAMETERS = EVENT_QUERY_PARAMETERS - {"cursor", "page_size"} | {"buckets"}


def _event_query(request: Request, allowed: frozenset[str], **fields: Any) -> EventQuery:
    """Validate the query string into an EventQuery; every problem names its parameter."""
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise _invalid(unknown[0], f"unknown parameter; allowed: {sorted(allowed)}")
    try:
        query = EventQuery(**fields)
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in error.errors()]
        ) from None
    if query.start and query.end and query.start > query.end:
        raise _invalid("start", "start is after end", fields.get("start"))
    return query


@router.get(
    "/events/histogram",
    response_model=EventHistogram,
    summary="Counts of matching events per time interval, for the events-over-time chart",
)
async def event_histogram(
    request: Request,
    store: Annotated[EventStore, Depends(get_store)],
    service: ServiceFilter = None,
    source: SourceFilter = None,
    actor: ActorFilter = None,
    operation: OperationFilter = None,
    result: ResultFilter = None,
    start: StartFilter = None,
    end: EndFilter = None,
    search: SearchFilter = None,
    tags: TagsFilter = None,
    buckets: Annotated[int, Query(ge=1, le=200, description="Most intervals wanted")] = 48,
) -> EventHistogram:
    """Without `start`/`end` the window is the week up to the newest matching event."""
    query = _event_query(
        request,
        HISTOGRAM_QUERY_PARAMETERS,
        service=service,
        source=source,
        actor=actor,
        operation=operation,
        result=result,
        start=start,
        end=end,
        search=search,
        tags=tags or [],
    )
    newest = None
    if query.end is None:
        latest = await store.query_events(query.model_copy(update={"page_size": 1}))
        newest = latest.items[0].timestamp if latest.items else None
    window: HistogramWindow = histogram_window(
        query.start, query.end, newest=newest, now=utc_now(), max_buckets=buckets
    )
    counts = await store.count_by_interval(query, window.start, window.interval_ms, window.buckets)
    return window.with_counts(counts)


@router.get("/events", response_model=EventPage, summary="Search events, newest first")
async def list_events(
    request: Request,
    store: Annotated[EventStore, Depends(get_store)],
    service: Annotated[str | None, Query(description="Exact service label, e.g. Exchange")] = None,
    source: Annotated[str | None, Query(description=SOURCE_DESCRIPTION)] = None,
    actor: Annotated[str | None, Query(description="Case-insensitive part of the actor")] = None,
    operation: Annotated[str | None, Query(description="Exact operation name")] = None,
    result: Annotated[str | None, Query(description="success | failure | unknown")] = None,
    start: Annotated[datetime | None, Query(description="Earliest timestamp (ISO 8601)")] = None,
    end: Annotated[datetime | None, Query(description="Latest timestamp (ISO 8601)")] = None,
    search: Annotated[
        str | None, Query(description="Words; each must start a word of the event")
    ] = None,
    tags: Annotated[list[str] | None, Query(description="Events carrying every tag")] = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
) -> EventPage:
    unknown = sorted(set(request.query_params) - EVENT_QUERY_PARAMETERS)
    if unknown:
        raise _invalid(unknown[0], f"unknown parameter; allowed: {sorted(EVENT_QUERY_PARAMETERS)}")
    try:
        position = Cursor.decode(cursor) if cursor else None
    except InvalidCursor as error:
        raise _invalid("cursor", str(error), cursor) from None
    try:
        query = EventQuery(
            service=service,
            source=source,
            actor=actor,
            operation=operation,
            result=result,  # type: ignore[arg-type]
            start=start,
            end=end,
            search=search,
            tags=tags or [],
            cursor=position,
            page_size=page_size,
        )
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in error.errors()]
        ) from None
    if query.start and query.end and query.start > query.end:
        raise _invalid("start", "start is after end", start)
    return await store.query_events(query)


@router.get("/events/{event_id}", response_model=CanonicalEvent, summary="One event, with raw")
async def get_event(
    event_id: str, store: Annotated[EventStore, Depends(get_store)]
) -> CanonicalEvent:
    if len(event_id) > 200:
        raise HTTPException(404, "no event with that id")
    event = await store.get_event(event_id)
    if event is None:
        raise HTTPException(404, "no event with that id")
    return event


@router.get("/filter-options", response_model=FilterOptions, summary="Values for filter dropdowns")
async def filter_options(
    request: Request, store: Annotated[EventStore, Depends(get_store)]
) -> FilterOptions:
    cached: tuple[float, FilterOptions] | None = getattr(request.app.state, "filter_options", None)
    if cached and time.monotonic() - cached[0] < FILTER_OPTIONS_TTL_S:
        return cached[1]
    options = await store.filter_options()
    request.app.state.filter_options = (time.monotonic(), options)
    return options


def _known_event_id(event_id: str) -> str:
    if len(event_id) > 200:
        raise HTTPException(404, "no event with that id")
    return event_id


@router.patch(
    "/events/{event_id}/tags",
    response_model=CanonicalEvent,
    summary="Replace an event's tags (needs a writer when auth is on)",
)
async def set_event_tags(
    event_id: str,
    body: Annotated[TagsRequest, Body()],
    request: Request,
    store: Annotated[EventStore, Depends(get_store)],
    principal: Annotated[Principal, Depends(require_writer)],
) -> CanonicalEvent:
    event = await store.set_tags(_known_event_id(event_id), body.tags)
    if event is None:
        raise HTTPException(404, "no event with that id")
    # Tags are filter options: the next dropdown must show a new tag at once.
    request.app.state.filter_options = None
    return event


@router.post(
    "/events/{event_id}/comments",
    response_model=CanonicalEvent,
    status_code=201,
    summary="Add a comment to an event; its author is the signed-in caller",
)
async def add_event_comment(
    event_id: str,
    body: Annotated[CommentRequest, Body()],
    store: Annotated[EventStore, Depends(get_store)],
    principal: Annotated[Principal, Depends(require_writer)],
) -> CanonicalEvent:
    comment = Comment(author=principal.name, text=body.text, created_at=utc_now())
    event = await store.add_comment(_known_event_id(event_id), comment)
    if event is None:
        raise HTTPException(404, "no event with that id")
    return event
