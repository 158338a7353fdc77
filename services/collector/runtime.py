"""The collector's shell: publish envelopes (and dead letters) to the message log."""

from __future__ import annotations

from collections.abc import Sequence

from aoc_collector.core import STAGE, to_messages
from aoc_common import topics
from aoc_common.codec import encode
from aoc_common.events import RawEnvelope
from aoc_common.message_log.base import Message, MessageLog
from aoc_common.metrics import DEAD_LETTERS, MESSAGES_PUBLISHED

SERVICE = "collector"
PUBLISH_BATCH = 500


async def publish_envelopes(
    message_log: MessageLog, items: Sequence[RawEnvelope], *, max_record_bytes: int
) -> int:
    """Publish every envelope; returns only after the log acknowledged all of them."""
    batch = to_messages(items, max_record_bytes=max_record_bytes)
    for topic, messages in batch.messages.items():
        for start in range(0, len(messages), PUBLISH_BATCH):
            chunk = messages[start : start + PUBLISH_BATCH]
            await message_log.publish(topic, chunk)
            MESSAGES_PUBLISHED.labels(SERVICE, topic).inc(len(chunk))
    if batch.dead_letters:
        await message_log.publish(
            topics.DLQ, [Message(None, encode(d)) for d in batch.dead_letters]
        )
        DEAD_LETTERS.labels(SERVICE, STAGE).inc(len(batch.dead_letters))
    return batch.count()
