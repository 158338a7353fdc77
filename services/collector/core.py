"""Collector logic without I/O: API answers → raw envelopes → messages for `aoc.raw.<source>`.

A raw message is keyed by the record's own id (so that redeliveries of one record stay in order in one
partition) and carries the record untouched. A record too large for the log becomes a dead letter here,
with the reason, instead of being refused by the broker and lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aoc_common.codec import encode, encode_key
from aoc_common.dead_letter import DeadLetter, dead_letter
from aoc_common.events import RawEnvelope, Source
from aoc_common.message_log.base import Message
from aoc_common.sources import source_record_id
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
