"""Export of the current query as CSV or NDJSON, streamed: the same filters and order as
`/api/events`, paged through the store by cursor and written as each page arrives, so memory stays one
page whatever the size. Bounded by `limit` (at most MAX_EXPORT_LIMIT events); the response says the
bound in `X-Export-Limit`. A read: the app-wide guard lets readers export what they may list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import Field

from aoc_api.dependencies import ReaderDep
from aoc_api.export_formats import csv_header, csv_row, ndjson_line
from aoc_api.openapi import STORE_RESPONSES
from aoc_common.event_store.base import EventReader
from aoc_common.events import CanonicalEvent, utc_now
from aoc_common.logging import get_logger
from aoc_common.query import MAX_PAGE_SIZE, EventFilters, EventQuery, Order

router = APIRouter(prefix="/api/events", tags=["events"], responses=STORE_RESPONSES)
log = get_logger(__name__)
DEFAULT_EXPORT_LIMIT = 10_000
MAX_EXPORT_LIMIT = 100_000
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}


class ExportQuery(EventFilters):
    format: Literal["csv", "ndjson"] = Field(default="csv", description="csv | ndjson")
    order: Order = Field(default="newest", description="newest | oldest first")
    limit: int = Field(
        default=DEFAULT_EXPORT_LIMIT,
        ge=1,
        le=MAX_EXPORT_LIMIT,
        description=f"Most events written (at most {MAX_EXPORT_LIMIT:,})",
    )


async def matching_events(
    store: EventReader, filters: EventFilters, order: Order, limit: int
) -> AsyncIterator[CanonicalEvent]:
    """The first `limit` matching events in `order`, a page at a time."""
    cursor: str | None = None
    sent = 0
    while sent < limit:
        size = min(MAX_PAGE_SIZE, limit - sent)
        page = await store.query_events(
            EventQuery.of(filters, page_size=size, order=order, cursor=cursor)
        )
        for event in page.items:
            yield event
        sent += len(page.items)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


async def _written(query: ExportQuery, store: EventReader) -> AsyncIterator[bytes]:
    events = matching_events(store, query.filters_only(), query.order, query.limit)
    try:
        if query.format == "csv":
            yield csv_header().encode()
            async for event in events:
                yield csv_row(event).encode()
        else:
            async for event in events:
                yield ndjson_line(event)
    except Exception:
        # The status line is sent already: the client sees a truncated file; the log says why.
        log.exception("export stopped", format=query.format)
        raise


@router.get(
    "/export",
    summary="The matching events as CSV or NDJSON, streamed (same filters as /api/events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/csv": {}, "application/x-ndjson": {}},
            "description": "One row (CSV, with a header) or one JSON event per line (NDJSON)",
        }
    },
)
async def export_events(
    query: Annotated[ExportQuery, Query()], store: ReaderDep
) -> StreamingResponse:
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        _written(query, store),
        media_type=MEDIA_TYPES[query.format],
        headers={
            "Content-Disposition": f'attachment; filename="aoc-events-{stamp}.{query.format}"',
            "X-Export-Limit": str(query.limit),
        },
    )
