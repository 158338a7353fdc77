"""Counting the events that match, for the event list and the overview: the total (exact up to a
bound, then "10,000+"), the top values of each field (facets), and counts per interval split by one
field's top values (the overview's stacked chart).

Every route takes the same filters as `/api/events` (a subclass of `EventFilters` as the query
model, so an unknown parameter is refused and every bound holds) and is answered by the store's
counting queries, never by reading events here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from aoc_api.dependencies import ReaderDep
from aoc_api.histogram import MAX_BUCKETS, EventHistogram, matching_window
from aoc_api.openapi import STORE_RESPONSES
from aoc_common.query import (
    DEFAULT_COUNT_LIMIT,
    DEFAULT_FACET_SAMPLE,
    FACET_FIELDS,
    MAX_COUNT_LIMIT,
    MAX_FACET_SAMPLE,
    MAX_FACET_TOP,
    EventFilters,
    FacetCounts,
    FacetField,
    MatchCount,
)

router = APIRouter(prefix="/api/events", tags=["events"], responses=STORE_RESPONSES)


class CountQuery(EventFilters):
    limit: int = Field(
        default=DEFAULT_COUNT_LIMIT,
        ge=1,
        le=MAX_COUNT_LIMIT,
        description="Count exactly up to this many; beyond it the answer is `exact: false`",
    )


@router.get("/count", response_model=MatchCount, summary="How many events match the filters")
async def count_events(query: Annotated[CountQuery, Query()], store: ReaderDep) -> MatchCount:
    return await store.count_matching(query.filters_only(), query.limit)


class FacetQuery(EventFilters):
    field: list[FacetField] = Field(
        default_factory=lambda: list(FACET_FIELDS),
        max_length=len(FACET_FIELDS),
        description="Fields to count values of (repeat the parameter); all when absent",
    )
    top: int = Field(default=10, ge=1, le=MAX_FACET_TOP, description="Values per field")
    sample: int = Field(
        default=DEFAULT_FACET_SAMPLE,
        ge=1,
        le=MAX_FACET_SAMPLE,
        description=(
            "Count the newest this-many matching events (all of them when fewer match: the answer's "
            "`complete` says which). A larger sample answers later when many events match: at a "
            "million events, reading a sample costs 1.5-3 µs an event, and the newest matches of "
            "a filter found in 1-3 % of events are the slowest to find."
        ),
    )


@router.get(
    "/facets",
    response_model=FacetCounts,
    summary="The most frequent values of each field among the matching events, with counts",
)
async def event_facets(query: Annotated[FacetQuery, Query()], store: ReaderDep) -> FacetCounts:
    fields = list(dict.fromkeys(query.field))
    return await store.facet_counts(query.filters_only(), fields, query.top, query.sample)


SeriesField = Literal["service", "source", "result", "category", "actor_type"]


class SeriesQuery(EventFilters):
    field: SeriesField = Field(default="service", description="The field whose values split bars")
    top: int = Field(default=8, ge=1, le=20, description="Values with their own series")
    buckets: int = Field(default=48, ge=1, le=MAX_BUCKETS, description="Most intervals wanted")


class SeriesLine(BaseModel):
    value: str = Field(description="The field's value, or the label of the remainder")
    other: bool = Field(default=False, description="The events of every value not listed")
    counts: list[int]


class EventSeries(EventHistogram):
    """The histogram of the matching events, and the same intervals counted per value of `field`
    (its `top` most frequent values, then the remainder): the lines add up to the totals."""

    field: SeriesField
    series: list[SeriesLine]


@router.get(
    "/series",
    response_model=EventSeries,
    summary="Counts of matching events per interval, per value of one field (stacked charts)",
)
async def event_series(query: Annotated[SeriesQuery, Query()], store: ReaderDep) -> EventSeries:
    """Without `start` the intervals cover every matching event (from the oldest to the newest)."""
    filters = query.filters_only()
    window = await matching_window(store, filters, query.buckets)
    facets = await store.facet_counts(filters, [query.field], query.top)
    values = [facet.value for facet in facets.facets.get(query.field, [])]
    totals, per_value = await store.count_by_interval_split(
        filters, window.start, window.interval_ms, window.buckets, query.field, values
    )
    histogram = window.with_counts(totals)
    lines = [
        SeriesLine(value=value, counts=counts)
        for value, counts in zip(values, per_value, strict=True)
    ]
    remainder = [
        total - sum(line.counts[index] for line in lines)
        for index, total in enumerate(b.count for b in histogram.buckets)
    ]
    if any(remainder):
        lines.append(SeriesLine(value="Other", other=True, counts=remainder))
    return EventSeries(**histogram.model_dump(), field=query.field, series=lines)
