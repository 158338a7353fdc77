"""The normalizer's shell on any message log: raw topics in, `aoc.events` and `aoc.dlq` out.

Events are keyed by dedupe_key, so every version of one audit record lands in one partition, in order.
Outputs are published (and acknowledged) before the input offsets are committed: at-least-once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from aoc_common import topics
from aoc_common.codec import encode, encode_key
from aoc_common.dead_letter import DeadLetter
from aoc_common.events import utc_now
from aoc_common.logging import get_logger
from aoc_common.message_log.base import Message, MessageLog, Record
from aoc_common.message_log.consumer import run_consumer
from aoc_common.metrics import DEAD_LETTERS, MESSAGES_PUBLISHED
from aoc_common.settings import Settings
from aoc_normalizer.core import STAGE, Limits, normalize_message
from aoc_normalizer.mappings import Mappings, load_mappings

SERVICE = "normalizer"
log = get_logger(__name__)


class Normalizer:
    """Holds the mapping in force and turns consumed batches into published events."""

    def __init__(self, message_log: MessageLog, mappings: Mappings, limits: Limits) -> None:
        self.message_log = message_log
        self.mappings = mappings
        self.limits = limits

    @classmethod
    def from_settings(cls, message_log: MessageLog, settings: Settings) -> Normalizer:
        limits = Limits(
            max_record_bytes=settings.max_record_bytes,
            max_future_skew=timedelta(minutes=settings.max_future_skew_minutes),
        )
        return cls(message_log, load_mappings(settings.mappings_path), limits)

    async def handle(self, records: Sequence[Record]) -> None:
        now = utc_now()
        events: list[Message] = []
        dead: list[Message] = []
        for record in records:
            outcome = normalize_message(record, self.mappings, now=now, limits=self.limits)
            if isinstance(outcome, DeadLetter):
                log.info(
                    "dead-lettered", reason=outcome.reason, topic=record.topic, offset=record.offset
                )
                dead.append(Message(record.key, encode(outcome)))
            else:
                events.append(Message(encode_key(outcome.dedupe_key), encode(outcome)))
        if events:
            await self.message_log.publish(topics.EVENTS, events)
            MESSAGES_PUBLISHED.labels(SERVICE, topics.EVENTS).inc(len(events))
        if dead:
            await self.message_log.publish(topics.DLQ, dead)
            DEAD_LETTERS.labels(SERVICE, STAGE).inc(len(dead))

    async def run(self, stop: asyncio.Event) -> None:
        await run_consumer(
            self.message_log,
            service=SERVICE,
            topics=topics.RAW_TOPICS,
            group=topics.NORMALIZER_GROUP,
            handle=self.handle,
            stop=stop,
        )
