"""Reading and writing topics as a test does: publish events, read a topic back as a fresh consumer
group, find where a topic ends."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from aoc_common import topics
from aoc_common.codec import encode, encode_key
from aoc_common.events import CanonicalEvent
from aoc_common.message_log.base import Message, MessageLog, Record


async def publish_events(
    message_log: MessageLog, events: Sequence[CanonicalEvent], topic: str = topics.EVENTS
) -> None:
    """`events` on `topic` keyed by dedupe_key, as the normalizer publishes them."""
    await message_log.publish(
        topic, [Message(encode_key(event.dedupe_key), encode(event)) for event in events]
    )


async def read_topic(
    message_log: MessageLog, topic: str, expected: int, *, timeout_s: float = 60.0
) -> list[Record]:
    """Everything on `topic` from the start: at least `expected` records (or what came before the
    deadline), plus whatever else is there, so that a test sees an unexpected extra record."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    async with message_log.subscribe([topic], f"test-reader-{uuid.uuid4().hex}") as reader:
        while len(records) < expected and time.monotonic() < deadline:
            records += await reader.fetch(500, 0.5)
        records += await reader.fetch(500, 0.2)
    return records


async def raw_keys(message_log: MessageLog, source: str, at_least: int = 0) -> list[str]:
    """Keys of every message on `aoc.raw.<source>`, read as a fresh consumer group."""
    keys: list[str] = []
    deadline = time.monotonic() + 60
    async with message_log.subscribe(
        [topics.raw_topic(source)],  # type: ignore[arg-type]
        f"test-reader-{uuid.uuid4().hex}",
    ) as reader:
        while time.monotonic() < deadline:
            records = await reader.fetch(500, 0.5)
            if not records and len(keys) >= at_least:
                break
            keys += [r.key.decode() if r.key else "" for r in records]
    return keys


async def topic_ends(message_log: MessageLog, topic: str) -> dict[int, int]:
    """Offset after the last record, per partition, found by reading the topic.

    Not `end_offsets`: Tansu reports the base offset of a partition's last batch + 1 there (see the
    xfail in the message log contract), which would call a consumer done too early.
    """
    ends: dict[int, int] = {}
    async with message_log.subscribe([topic], f"test-ends-{uuid.uuid4().hex}") as reader:
        empty_fetches = 0
        while empty_fetches < 2:
            records = await reader.fetch(500, 0.5)
            empty_fetches = 0 if records else empty_fetches + 1
            for record in records:
                ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    return ends
