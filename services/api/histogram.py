"""The events-over-time chart: which intervals to count, as pure functions of the asked window.

Intervals are "round" (a minute, five, an hour, a day…) and aligned on the epoch, so that the bars of
two charts line up and their labels read naturally; at most `max_buckets` of them cover the window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field

from aoc_common.event_store.base import EventReader
from aoc_common.events import utc_now
from aoc_common.query import EventFilters, EventQuery, Order, timestamp_ms

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE_MS = 60_000
NICE_INTERVALS_MS = tuple(
    minutes * _MINUTE_MS
    for minutes in (1, 5, 15, 30, 60, 180, 360, 720, 1440, 2 * 1440, 7 * 1440, 30 * 1440)
)
DEFAULT_WINDOW = timedelta(days=7)
MAX_BUCKETS = 200


class HistogramQuery(EventFilters):
    """The event filters plus how many intervals at most: `/api/events/histogram`'s parameters."""

    buckets: int = Field(default=48, ge=1, le=MAX_BUCKETS, description="Most intervals wanted")


class HistogramBucket(BaseModel):
    start: datetime
    count: int


class EventHistogram(BaseModel):
    start: datetime
    end: datetime
    interval_seconds: int
    total: int
    buckets: list[HistogramBucket]


class HistogramWindow(BaseModel):
    start: datetime
    interval_ms: int
    buckets: int

    def with_counts(self, counts: list[int]) -> EventHistogram:
        step = timedelta(milliseconds=self.interval_ms)
        return EventHistogram(
            start=self.start,
            end=self.start + step * self.buckets,
            interval_seconds=self.interval_ms // 1000,
            total=sum(counts),
            buckets=[
                HistogramBucket(start=self.start + step * index, count=count)
                for index, count in enumerate(counts)
            ],
        )


def _aligned(start_ms: int, end_ms: int, interval_ms: int) -> tuple[int, int]:
    first = start_ms - start_ms % interval_ms
    return first, -(-(end_ms + 1 - first) // interval_ms)


def histogram_window(
    start: datetime | None,
    end: datetime | None,
    *,
    newest: datetime | None,
    now: datetime,
    max_buckets: int,
    oldest: datetime | None = None,
) -> HistogramWindow:
    """The intervals covering [start, end]. A missing end is the newest matching event (or now),
    a missing start the oldest matching event (or, with none, a week before the end)."""
    end = end or newest or now
    start = start or (oldest if oldest is not None and oldest <= end else None)
    start = start or end - DEFAULT_WINDOW
    start_ms, end_ms = timestamp_ms(start), max(timestamp_ms(end), timestamp_ms(start))
    for interval_ms in NICE_INTERVALS_MS:
        first, count = _aligned(start_ms, end_ms, interval_ms)
        if count <= max_buckets:
            break
    else:
        days = -(-(end_ms - start_ms + 1) // (max_buckets * NICE_INTERVALS_MS[8])) + 1
        interval_ms = days * NICE_INTERVALS_MS[8]
        first, count = _aligned(start_ms, end_ms, interval_ms)
    return HistogramWindow(
        start=_EPOCH + timedelta(milliseconds=first), interval_ms=interval_ms, buckets=count
    )


async def _edge(store: EventReader, filters: EventFilters, order: Order) -> datetime | None:
    page = await store.query_events(EventQuery.of(filters, page_size=1, order=order))
    return page.items[0].timestamp if page.items else None


async def matching_window(
    store: EventReader, filters: EventFilters, max_buckets: int
) -> HistogramWindow:
    """The intervals covering every event matching `filters`: where `start` or `end` is not given,
    the oldest or the newest match (two one-row index reads), so that the chart's total is the
    number of matches, never a silent part of them."""
    newest = await _edge(store, filters, "newest") if filters.end is None else None
    oldest = await _edge(store, filters, "oldest") if filters.start is None else None
    return histogram_window(
        filters.start,
        filters.end,
        newest=newest,
        oldest=oldest,
        now=utc_now(),
        max_buckets=max_buckets,
    )
