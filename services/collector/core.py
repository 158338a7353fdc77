"""Collector logic without I/O: API answers → raw envelopes → messages for `aoc.raw.<source>`, and
the rules of live collection (which window a run asks for, how far back each API can answer, when a
watermark may move, which records the overlap already published).

A raw message is keyed by the record's own id (so that redeliveries of one record stay in order in one
partition) and carries the record untouched. A record too large for the log becomes a dead letter here,
with the reason, instead of being refused by the broker and lost.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from aoc_common.codec import encode, encode_key
from aoc_common.dead_letter import DeadLetter, dead_letter
from aoc_common.events import RawEnvelope, Source
from aoc_common.message_log.base import Message
from aoc_common.sources import source_record_id, source_spec
from aoc_common.sources.spec import iso_z
from aoc_common.topics import raw_topic

STAGE = "collector"


@dataclass
class OutgoingBatch:
    """Messages per topic plus the records that could not be published as they are."""

    messages: dict[str, list[Message]] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def count(self) -> int:
        return sum(len(m) for m in self.messages.values())


def graph_page_records(page: Any) -> list[Any]:
    """The `value` array of a Graph collection page (an empty list when the page has none)."""
    if isinstance(page, dict) and isinstance(page.get("value"), list):
        return list(page["value"])
    return []


def envelopes(
    source: Source, records: Iterable[Any], *, tenant_id: str | None, fetched_at: datetime
) -> list[RawEnvelope]:
    return [
        RawEnvelope(source=source, tenant_id=tenant_id, fetched_at=fetched_at, payload=record)
        for record in records
    ]


def to_messages(items: Iterable[RawEnvelope], *, max_record_bytes: int) -> OutgoingBatch:
    batch = OutgoingBatch()
    for envelope in items:
        topic = raw_topic(envelope.source)
        value = encode(envelope)
        key = encode_key(source_record_id(envelope.source, envelope.payload))
        if len(value) > max_record_bytes:
            batch.dead_letters.append(
                dead_letter(
                    value,
                    f"record of {len(value)} bytes exceeds MAX_RECORD_BYTES={max_record_bytes}",
                    stage=STAGE,
                    source_topic=topic,
                    key=key,
                )
            )
            continue
        batch.messages.setdefault(topic, []).append(Message(key, value))
    return batch


# --- Live collection: windows, history limits, watermarks (pure; the shell does the I/O) ---------

# How far back each API can still answer is each source's `history_limit` (aoc_common.sources).
# The Management API refuses a start time older than 7 days by its clock, not ours: stay a minute
# inside the limit so that a small clock difference does not turn a whole run into a 400.
HISTORY_MARGIN = timedelta(minutes=1)
DEFAULT_FORCED_HOURS = 168
MAX_FORCED_HOURS = 720
# A source's first run reads as far back as a forced fetch may (30 days; 7 for the Management API):
# records older than what the APIs keep cannot be collected later, so take them while they exist.
FIRST_RUN_LOOKBACK = timedelta(hours=MAX_FORCED_HOURS)
CONTENT_WINDOW = timedelta(hours=24)  # the Management API's longest listing window
_FRACTION = re.compile(r"(\.\d{6})\d+")


@dataclass(frozen=True)
class Window:
    """The time range one run of one source asks for; `warnings` say what could not be asked."""

    start: datetime
    end: datetime
    clamped: bool = False
    warnings: tuple[str, ...] = ()


class SourceWatermark(BaseModel):
    """Where the next run of a source starts, stored in the event store's state.

    `watermark` is the end of the last window whose every record was published and acknowledged.
    `boundary_ids` are the records already published inside the overlap the next run re-reads, so
    that the overlap costs a request, not a duplicate message.
    """

    watermark: datetime | None = None
    boundary_ids: list[str] = Field(default_factory=list)


def watermark_key(source: Source) -> str:
    """State key of a source's watermark (the `watermarks` collection of the issue)."""
    return f"watermarks:{source}"


def fetched_content_key(source: Source) -> str:
    """State key of the content blobs a Management Activity source already fetched."""
    return f"collector:{source}:fetched_content"


def plan_window(
    source: Source,
    *,
    now: datetime,
    watermark: datetime | None,
    overlap: timedelta,
    forced_hours: int | None = None,
) -> Window:
    """The window of the next run: forced hours, else from the watermark minus the overlap, else the
    first-run lookback; never further back than the API keeps records (with a warning saying so)."""
    if forced_hours is not None:
        start = now - timedelta(hours=forced_hours)
    elif watermark is not None:
        start = watermark - overlap
    else:
        start = now - FIRST_RUN_LOOKBACK
    start = min(start, now)
    spec = source_spec(source)
    limit = spec.history_limit
    earliest = now - limit + HISTORY_MARGIN
    if start >= earliest:
        return Window(start, now)
    warnings: tuple[str, ...] = ()
    if start < now - limit:
        days = limit.days
        warnings = (
            f"{spec.labels.retention} for {days} days: the window starts at {iso_z(earliest)} instead of "
            f"{iso_z(start)}; records from before then can no longer be collected",
        )
    return Window(earliest, now, clamped=True, warnings=warnings)


def advance_watermark(previous: datetime | None, window: Window) -> datetime | None:
    """The watermark after `window` was collected completely.

    It moves to the window's end only when the window reached back to the previous watermark (or
    past it because older records no longer exist): a forced short window after a long pause must
    not jump over the hours it did not read.
    """
    if previous is None or window.start <= previous or window.clamped:
        return window.end if previous is None else max(previous, window.end)
    return previous


def content_windows(window: Window) -> list[Window]:
    """Consecutive ≤ 24-hour windows covering `window`, as the Management API requires."""
    windows = []
    start = window.start
    while start < window.end:
        end = min(start + CONTENT_WINDOW, window.end)
        windows.append(Window(start, end))
        start = end
    return windows


def graph_filter(window: Window, time_field: str = "activityDateTime") -> str:
    """`$filter` on a Graph collection's time field (audit collections support ge/le on it)."""
    return f"{time_field} ge {iso_z(window.start)} and {time_field} le {iso_z(window.end)}"


def record_time(payload: Any, field_name: str = "activityDateTime") -> datetime | None:
    """A Graph record's activity time, or None when absent or unreadable (the normalizer judges)."""
    if not isinstance(payload, dict) or not isinstance(payload.get(field_name), str):
        return None
    text = _FRACTION.sub(r"\1", payload[field_name].strip().replace("Z", "+00:00"))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new_records(source: Source, records: Iterable[Any], already_published: set[str]) -> list[Any]:
    """Records not yet published in this run or in the previous run's overlap; updates the set.

    Records without an id are always kept: the normalizer gives them a content hash and dedupes.
    """
    kept = []
    for record in records:
        record_id = source_record_id(source, record)
        if record_id is not None:
            if record_id in already_published:
                continue
            already_published.add(record_id)
        kept.append(record)
    return kept


def boundary_ids(source: Source, published: Iterable[Any], next_start: datetime) -> list[str]:
    """Ids of published records the next run will read again (at or after its start)."""
    time_field = source_spec(source).record_time_field
    ids = set()
    for record in published:
        moment = record_time(record, time_field)
        record_id = source_record_id(source, record)
        if record_id is not None and (moment is None or moment >= next_start):
            ids.add(record_id)
    return sorted(ids)


def prune_fetched_content(fetched: dict[str, str], now: datetime) -> dict[str, str]:
    """Drop content ids whose blob expired: the listing can no longer return them."""
    kept = {}
    for content_id, expires in fetched.items():
        moment = record_time({"t": expires}, "t")
        if moment is None or moment > now - HISTORY_MARGIN:
            kept[content_id] = expires
    return kept


def management_time(moment: datetime) -> str:
    """The Management Activity API's time format: UTC, seconds, no offset."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def same_origin(url: str, base_url: str) -> bool:
    """Whether `url` (a nextLink, NextPageUri or contentUri) is on the configured API's origin.

    A bearer token is sent only there: a page must never redirect our token to another host.
    """
    link, base = urlsplit(url), urlsplit(base_url)
    return (link.scheme, link.netloc.lower()) == (base.scheme, base.netloc.lower()) and (
        link.path.startswith(base.path.rstrip("/") + "/") or not base.path.strip("/")
    )
