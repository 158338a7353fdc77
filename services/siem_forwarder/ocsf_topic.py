"""`aoc.events.ocsf`: every event of `aoc.events` as an OCSF 1.7.0 event, keyed like the original, for
data lakes and tools that subscribe to OCSF (Security Lake style) rather than to AOC's schema.

Its own consumer group (aoc-ocsf-publisher), so it lags, fails and replays without touching the SIEM
forwarder; published before the offsets are committed (at-least-once, like every AOC topic).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aoc_common import topics
from aoc_common.consumed_events import ConsumedEvent
from aoc_common.dead_letter import DeadLetter
from aoc_common.message_log.base import Message, MessageLog
from aoc_common.message_log.consumer import EventConsumer
from aoc_common.service import Service
from aoc_common.siem_formats import encode_as


class OcsfPublisher(EventConsumer):
    service = "ocsf_publisher"
    reader = "OCSF publisher"

    def __init__(
        self,
        message_log: MessageLog,
        *,
        group: str = topics.OCSF_PUBLISHER_GROUP,
        events_topic: str = topics.EVENTS,
        ocsf_topic: str = topics.EVENTS_OCSF,
    ) -> None:
        super().__init__(message_log, topics=[events_topic], group=group)
        self.ocsf_topic = ocsf_topic

    async def handle_events(self, events: Sequence[ConsumedEvent]) -> list[DeadLetter]:
        await self.message_log.publish(
            self.ocsf_topic,
            [
                Message(
                    item.record.key or item.event.dedupe_key.encode(),
                    encode_as("ocsf", item.event, item.json),
                )
                for item in events
            ],
        )
        return []


@dataclass
class Together:
    """Several consumers as one service: they run side by side; one failing stops the others."""

    services: Sequence[Service]

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            for service in self.services:
                group.create_task(service.run(stop))
