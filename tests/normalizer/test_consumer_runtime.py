"""The normalizer's consumer runtime (`NORMALIZER_RUNTIME=consumer`) on a Kafka-protocol broker (Tansu):
scaled out to two members, one stopped and started again, and switched with the Faust runtime — every
record comes out exactly once, and the dedupe sightings follow their raw partition through each move.

Redeliveries (the same record published again, as overlapping fetch windows do) are the probe: a member
that handles a partition it did not handle before must drop them, which it can only do from the
sightings changelog."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import DeleteGroupsRequest

from aoc_common import topics
from aoc_common.message_log.base import Message, Subscription
from aoc_common.message_log.kafka import KafkaMessageLog
from aoc_common.service import serve
from aoc_normalizer.consumer_runtime import ConsumerNormalizer, build_consumer_runtime
from aoc_normalizer.service import DEFINITION as NORMALIZER
from tests.engines.kafka_server import (
    kafka_service_settings,
    kafka_test_options,
    tansu_broker,
    using_tansu,
)
from tests.utils.records import directory_records, raw_record
from tests.utils.waiting import wait_for

PARTITIONS = 3
RAW = topics.raw_topic("directory")


@pytest.fixture
def bootstrap(tmp_path: Path) -> Iterator[str]:
    """A broker of the test's own: each test counts aoc.events from offset 0 and owns the group."""
    with tansu_broker(tmp_path / "broker.log") as address:
        yield address


@pytest.fixture
async def kafka_log(bootstrap: str) -> AsyncIterator[KafkaMessageLog]:
    message_log = KafkaMessageLog(bootstrap, default_partitions=PARTITIONS, **kafka_test_options())
    await message_log.start()
    await message_log.ensure_topics(topics.ALL_TOPICS, partitions=PARTITIONS)
    yield message_log
    await message_log.stop()


@pytest.fixture
def records(fixtures_dir: Path) -> list[dict[str, Any]]:
    template = directory_records(fixtures_dir)[0]
    return [{**template, "id": f"Directory_scale_{n:04d}"} for n in range(240)]


def raw_messages(records: list[dict[str, Any]]) -> list[Message]:
    """Keyed by record id, as the collector publishes: one record id, one raw partition."""
    return [Message(r["id"].encode(), raw_record("directory", r).value) for r in records]


class EventsSeen:
    """Keys of the events on aoc.events, read by one consumer group for the whole test."""

    def __init__(self, reader: Subscription) -> None:
        self.reader = reader
        self.keys: list[bytes] = []

    async def until(self, count: int, timeout_s: float = 90) -> list[bytes]:
        deadline = time.monotonic() + timeout_s
        while len(self.keys) < count and time.monotonic() < deadline:
            fetched = await self.reader.fetch(500, 0.5)
            self.keys += [r.key or b"" for r in fetched]
        assert len(self.keys) >= count, f"{len(self.keys)} of {count} events within {timeout_s} s"
        return self.keys

    async def nothing_more(self) -> list[bytes]:
        self.keys += [r.key or b"" for r in await self.reader.fetch(500, 2.0)]
        return self.keys


def exactly_once(
    seen: list[bytes], records: list[dict[str, Any]]
) -> tuple[list[bytes], list[bytes]]:
    """(keys repeated, keys missing): both empty when every record came out exactly once."""
    wanted = {f"directory:{r['id']}".encode() for r in records}
    repeated = sorted(key for key, n in Counter(seen).items() if n > 1)
    return repeated, sorted(wanted - set(seen))


async def settled(condition: Any, timeout_s: float = 60) -> None:
    assert await wait_for(condition, bool, timeout_s), "the group did not settle in time"


async def forget_the_group_protocol_on_tansu(bootstrap: str) -> None:
    """Tansu 0.6 only: an empty group keeps refusing every assignor but its last one.

    Apache Kafka lets any assignor join an empty group (Faust's is "faust", the consumer runtime's
    "range"); Tansu answers InconsistentGroupProtocol for ever. Minimal reproduction: a consumer with
    the range assignor joins group g, commits, leaves; a consumer with the round-robin assignor then
    cannot join g. What an operator on Tansu does between runtimes: delete the group and put its
    committed offsets back.
    """
    if not using_tansu():
        return
    group = topics.NORMALIZER_GROUP
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        raw = [TopicPartition(t, p) for t in topics.RAW_TOPICS for p in range(PARTITIONS)]
        found = await admin.list_consumer_group_offsets(group, partitions=raw)
        offsets = {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}
        coordinator = await admin.find_coordinator(group)
        await admin._send_request_to_node(coordinator, DeleteGroupsRequest([group]))
    finally:
        await admin.close()
    committer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await committer.start()
    try:
        committer.assign(list(offsets))
        await committer.commit(offsets)
    finally:
        await committer.stop()


class Member:
    """One instance of the consumer runtime in this process, with its own stop switch."""

    def __init__(self, normalizer: ConsumerNormalizer) -> None:
        self.normalizer = normalizer
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(normalizer.run(self.stop))

    @property
    def partitions(self) -> set[int]:
        """Raw partitions whose sightings this member holds: the ones assigned to it."""
        return self.normalizer.sightings.partitions

    async def stopped(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, timeout=60)


@pytest.mark.timeout(300)
async def test_two_members_a_rebalance_and_a_restart_lose_nothing_and_repeat_nothing(
    kafka_log: KafkaMessageLog, bootstrap: str, tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    def member(name: str) -> Member:
        settings = kafka_service_settings(
            bootstrap, tmp_path / name, PARTITIONS, normalizer_runtime="consumer"
        )
        return Member(build_consumer_runtime(settings))

    first_third, second_third, last_third = records[:80], records[80:160], records[160:]
    async with kafka_log.subscribe([topics.EVENTS], f"test-{uuid.uuid4().hex}") as reader:
        events = EventsSeen(reader)
        await kafka_log.publish(RAW, raw_messages(first_third))
        a = member("a")
        await events.until(80)
        assert a.partitions == {0, 1, 2}

        b = member("b")  # the group rebalances: the partitions are split between a and b
        await settled(lambda: b.partitions and len(a.partitions) < PARTITIONS)
        assert a.partitions | b.partitions == {0, 1, 2}
        assert not a.partitions & b.partitions
        # Redeliveries of what a handled land on b's partition too: b restored their sightings.
        await kafka_log.publish(RAW, raw_messages(second_third + first_third[:40]))
        await events.until(160)

        await a.stopped()  # b takes every partition, restoring the sightings a wrote
        await settled(lambda: b.partitions == {0, 1, 2})
        await kafka_log.publish(RAW, raw_messages(first_third[40:] + last_third[:40]))
        await events.until(200)

        a = member("a-again")  # a restart: the group rebalances once more
        await settled(lambda: a.partitions and len(b.partitions) < PARTITIONS)
        await kafka_log.publish(RAW, raw_messages(second_third + last_third[40:]))
        seen = await events.until(240)
        await a.stopped()
        await b.stopped()
        seen = await events.nothing_more()

    assert exactly_once(seen, records) == ([], [])
    assert len(seen) == len(records)


@pytest.mark.timeout(420)  # two Faust worker starts on a busy 2-core machine
async def test_switching_between_faust_and_the_consumer_runtime_keeps_the_dedupe_state(
    kafka_log: KafkaMessageLog, bootstrap: str, tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    handled_by = [records[:60], records[60:120], records[120:180]]

    async def run(runtime: str, messages: list[Message], until: int) -> None:
        stop = asyncio.Event()
        settings = kafka_service_settings(
            bootstrap, tmp_path / f"{runtime}-{until}", PARTITIONS, normalizer_runtime=runtime
        )
        worker = asyncio.create_task(serve(NORMALIZER, settings, stop))
        try:
            await kafka_log.publish(RAW, messages)
            await events.until(until, timeout_s=150)
        finally:
            stop.set()
            await asyncio.wait_for(worker, timeout=60)
        await forget_the_group_protocol_on_tansu(bootstrap)

    async with kafka_log.subscribe([topics.EVENTS], f"test-{uuid.uuid4().hex}") as reader:
        events = EventsSeen(reader)
        await run("faust", raw_messages(handled_by[0]), 60)
        # Everything Faust handled comes again: the consumer runtime drops it, from Faust's changelog.
        await run("consumer", raw_messages(handled_by[0] + handled_by[1]), 120)
        # And the other way: Faust drops what the consumer runtime remembered.
        await run("faust", raw_messages(handled_by[1] + handled_by[2]), 180)
        seen = await events.nothing_more()

    assert exactly_once(seen, records[:180]) == ([], [])
    assert len(seen) == 180
