"""The SIEM forwarder under test: which consumer group it reads as on which engine, whether it caught
up, and what it dead-lettered. The Kafka broker is shared by the session and other tests publish the
same fixture events, so a test gives its events ids of their own and counts only those."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from aoc_common import topics
from aoc_common.events import CanonicalEvent, event_id_for
from aoc_common.message_log.base import MessageLog
from aoc_common.message_log.kafka import KafkaMessageLog
from tests.utils.waiting import wait_for


@dataclass
class Engine:
    """A started message log and the consumer group the forwarder under test uses on it."""

    name: str
    message_log: MessageLog
    group: str


def with_ids_of_their_own(events: Sequence[CanonicalEvent]) -> list[CanonicalEvent]:
    """`events` under ids no other test uses, so that a test can tell its events from others'."""
    run = uuid.uuid4().hex[:8]
    copies = []
    for event in events:
        dedupe_key = f"{event.dedupe_key}#{run}"
        copies.append(
            event.model_copy(update={"dedupe_key": dedupe_key, "id": event_id_for(dedupe_key)})
        )
    return copies


def ours(received: list[str], events: list[CanonicalEvent]) -> list[str]:
    """The ids in `received` that belong to `events` (a shared broker may hold others)."""
    wanted = {e.id for e in events}
    return [event_id for event_id in received if event_id in wanted]


async def caught_up(engine: Engine) -> int:
    """Wait until the forwarder's group has committed every record now on `aoc.events`; returns how
    many it has not (0: caught up; more when the wait timed out).

    Measured against the records themselves (`record_ends`), not the broker's end offsets: Tansu
    under-reports those, and a forwarder that had committed one record of each partition used to
    look done while the rest of a partition was still to be sent.
    """
    ends = await record_ends(engine.message_log, topics.EVENTS)

    async def behind() -> int:
        committed = await engine.message_log.committed(engine.group, topics.EVENTS)
        return sum(max(0, end - (committed.get(p) or 0)) for p, end in ends.items())

    return await wait_for(behind, lambda n: n == 0)


async def record_ends(message_log: MessageLog, topic: str) -> dict[int, int]:
    """The offset after each partition's last record.

    Tansu 0.6 reports a partition's end as the base offset of its last record batch + 1 (the xfail in
    the message log contract suite), so on Kafka the last batch is read back, from that offset on, by
    a group-less consumer (on Apache Kafka that is the last record: the answer is the same). Cheap
    where `topic_ends` is not: it reads one batch per partition, not the whole topic, and joins no
    group.
    """
    reported = await message_log.end_offsets(topic)
    if not isinstance(message_log, KafkaMessageLog):
        return reported
    ends = dict(reported)
    partitions = [TopicPartition(topic, p) for p, end in reported.items() if end > 0]
    if not partitions:
        return ends
    reader = AIOKafkaConsumer(
        bootstrap_servers=message_log.bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    await reader.start()
    try:
        reader.assign(partitions)
        for tp in partitions:
            reader.seek(tp, reported[tp.partition] - 1)
        unread = set(partitions)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            fetched = await reader.getmany(timeout_ms=200)
            for tp, records in fetched.items():
                ends[tp.partition] = max(ends[tp.partition], records[-1].offset + 1)
                unread.discard(tp)
            if not fetched and not unread:
                return ends  # every partition read up to where nothing more comes
        raise AssertionError(f"could not read the last records of {topic!r}: {sorted(unread)}")
    finally:
        await reader.stop()


async def siem_dead_letters(
    message_log: MessageLog, event_ids: set[str], *, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """The forwarder's dead letters on `aoc.dlq` for `event_ids` (the topic holds others' too)."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    async with message_log.subscribe([topics.DLQ], f"test-dlq-{uuid.uuid4().hex}") as reader:
        while len(found) < len(event_ids) and time.monotonic() < deadline:
            for record in await reader.fetch(500, 0.5):
                letter = orjson.loads(record.value)
                if letter["stage"] != "siem_forwarder":
                    continue
                original = orjson.loads(base64.b64decode(letter["original_base64"]))
                if original.get("id") in event_ids:
                    found.append(letter)
    return found
