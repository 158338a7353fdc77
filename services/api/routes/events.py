"""Event search and lookup, tags and comments.

The query string of `/api/events` and `/api/events/histogram` is validated into the shared filter
models (`EventQuery`, `HistogramQuery`, both `EventFilters`), declared as FastAPI query-parameter
models: every filter field, its bounds and its description come from that one declaration, and a
parameter the model does not know is refused (422, naming it). Nothing reaches a database as a raw
string operator or regular expression.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request

from aoc_api.auth import Principal, require_writer
from aoc_api.dependencies import ReaderDep, WriterDep
from aoc_api.histogram import EventHistogram, HistogramQuery, matching_window
from aoc_api.notes import CommentRequest, TagsRequest
from aoc_api.openapi import STORE_RESPONSES
from aoc_common.events import CanonicalEvent, Comment, utc_now
from aoc_common.query import EventPage, EventQuery, FilterOptions

router = APIRouter(prefix="/api", tags=["events"], responses=STORE_RESPONSES)
FILTER_OPTIONS_TTL_S = 10.0
# Ids are UUIDs (36 characters); anything much longer names no event and never reaches a store.
MAX_EVENT_ID_LENGTH = 200
NO_SUCH_EVENT = "no event with that id"


@router.get(
    "/events/histogram",
    response_model=EventHistogram,
    summary="Counts of matching events per time interval, for the events-over-time chart",
)
async def event_histogram(
    query: Annotated[HistogramQuery, Query()], store: ReaderDep
) -> EventHistogram:
    """Without `start` the intervals begin at the oldest matching event, without `end` they end at
    the newest: the chart covers every match, and its total is their number."""
    filters = query.filters_only()
    window = await matching_window(store, filters, query.buckets)
    counts = await store.count_by_interval(
        filters, window.start, window.interval_ms, window.buckets
    )
    return window.with_counts(counts)


@router.get("/events", response_model=EventPage, summary="Search events, newest first")
async def list_events(query: Annotated[EventQuery, Query()], store: ReaderDep) -> EventPage:
    return await store.query_events(query)


def known_event_id(event_id: str) -> str:
    """An id no event can have is answered 404 before any store sees it."""
    if len(event_id) > MAX_EVENT_ID_LENGTH:
        raise HTTPException(404, NO_SUCH_EVENT)
    return event_id


EventId = Annotated[str, Depends(known_event_id)]


@router.get("/events/{event_id}", response_model=CanonicalEvent, summary="One event, with raw")
async def get_event(event_id: EventId, store: ReaderDep) -> CanonicalEvent:
    event = await store.get_event(event_id)
    if event is None:
        raise HTTPException(404, NO_SUCH_EVENT)
    return event


@router.get("/filter-options", response_model=FilterOptions, summary="Values for filter dropdowns")
async def filter_options(request: Request, store: ReaderDep) -> FilterOptions:
    cached: tuple[float, FilterOptions] | None = getattr(request.app.state, "filter_options", None)
    if cached and time.monotonic() - cached[0] < FILTER_OPTIONS_TTL_S:
        return cached[1]
    options = await store.filter_options()
    request.app.state.filter_options = (time.monotonic(), options)
    return options


@router.patch(
    "/events/{event_id}/tags",
    response_model=CanonicalEvent,
    summary="Replace an event's tags (needs a writer when auth is on)",
)
async def set_event_tags(
    event_id: EventId,
    body: Annotated[TagsRequest, Body()],
    request: Request,
    store: WriterDep,
    principal: Annotated[Principal, Depends(require_writer)],
) -> CanonicalEvent:
    event = await store.set_tags(event_id, body.tags)
    if event is None:
        raise HTTPException(404, NO_SUCH_EVENT)
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
    event_id: EventId,
    body: Annotated[CommentRequest, Body()],
    store: WriterDep,
    principal: Annotated[Principal, Depends(require_writer)],
) -> CanonicalEvent:
    comment = Comment(author=principal.name, text=body.text, created_at=utc_now())
    event = await store.add_comment(event_id, comment)
    if event is None:
        raise HTTPException(404, NO_SUCH_EVENT)
    return event
