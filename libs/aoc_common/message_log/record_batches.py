"""Publishing through aiokafka as whole record batches: one future per partition, not one per message.

`AIOKafkaProducer.send` costs a future, a task and several callbacks per message — at thousands of
messages per second, a large share of a Python producer's time. A batch built with `create_batch` and
handed over with `send_batch` costs one future for up to `max_batch_size` bytes. Every AOC producer on
Kafka sends this way: `KafkaMessageLog.publish` (collector, alerter, dead letters of every consumer),
the Faust normalizer's publisher, and the normalizer's consumer runtime.

Partitions are chosen as Kafka's default partitioner does (murmur2 of the key, the Java client's and
librdkafka's `murmur2_random`), so one key always lands in one partition whoever produced it; messages
without a key go round-robin. Order within a partition is the order of `messages`: aiokafka keeps at most
one batch per partition in flight.

This module never waits for acknowledgements: callers gather the returned futures when their semantics
say so (once per publish call, once per normalizer batch).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from aoc_common.message_log.base import Message, MessageLogError

# A produce request carries up to this much per partition (Kafka's default batch of 16 KiB holds ~8
# audit events). A single larger message still goes out, alone in its batch.
RECORD_BATCH_BYTES = 512 * 1024


class RecordBatchSender:
    """Queues messages on an aiokafka producer as record batches per partition.

    `max_message_bytes` is the bound on one message (key + value), checked here because `send_batch`,
    unlike `send`, does not check it: a message the broker would refuse fails its publish at once.
    """

    def __init__(self, producer: AIOKafkaProducer, *, max_message_bytes: int) -> None:
        self.producer = producer
        self.max_message_bytes = max_message_bytes
        self.partitioner = DefaultPartitioner()
        self._round_robin = 0
        self._tracked: set[str] = set()

    async def send(self, topic: str, messages: Sequence[Message]) -> list[asyncio.Future[Any]]:
        """Queue `messages` on `topic`; the futures resolve when the broker acknowledged each batch."""
        if not messages:
            return []
        self.refuse_oversized(topic, messages)
        await self.track(topic)
        partitions = sorted(await self.producer.partitions_for(topic))
        deliveries: list[asyncio.Future[Any]] = []
        for partition, queued in self.by_partition(messages, partitions).items():
            deliveries += await self.send_to_partition(topic, partition, queued)
        return deliveries

    async def send_to_partition(
        self, topic: str, partition: int, messages: Sequence[Message]
    ) -> list[asyncio.Future[Any]]:
        """Queue `messages` on one partition chosen by the caller (a table's changelog partition)."""
        self.refuse_oversized(topic, messages)
        await self.track(topic)
        producer = self.producer
        deliveries: list[asyncio.Future[Any]] = []
        batch = producer.create_batch()
        for message in messages:
            if batch.append(key=message.key, value=message.value, timestamp=None) is None:
                deliveries.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                # The first message of an empty batch is always taken, whatever its size.
                batch.append(key=message.key, value=message.value, timestamp=None)
        deliveries.append(await producer.send_batch(batch, topic, partition=partition))
        return deliveries

    async def track(self, topic: str) -> None:
        """Keep `topic` in the producer's metadata, with every topic it already knows.

        aiokafka's client starts by fetching metadata for all topics; the first topic it is asked about
        that it does not know (one created after that fetch, such as a changelog) makes it fetch that
        topic only, and the others drop out of its metadata. Batches queued for them then wait for a
        leader that never comes back (seen on Tansu: a publish stuck until its timeout). Naming
        every known topic explicitly avoids that.
        """
        if topic in self._tracked:
            return
        client = self.producer.client
        self._tracked.add(topic)
        await client.set_topics(set(client.cluster.topics()) | self._tracked)

    def refuse_oversized(self, topic: str, messages: Sequence[Message]) -> None:
        for message in messages:
            size = len(message.value) + (len(message.key) if message.key else 0)
            if size > self.max_message_bytes:
                raise MessageLogError(
                    f"a message of {size} bytes for {topic!r} exceeds the "
                    f"{self.max_message_bytes}-byte limit"
                )

    def by_partition(
        self, messages: Sequence[Message], partitions: Sequence[int]
    ) -> dict[int, list[Message]]:
        """`messages` grouped by the partition Kafka's default partitioner gives them, in order."""
        grouped: dict[int, list[Message]] = {}
        for message in messages:
            if message.key is None:
                partition = partitions[self._round_robin % len(partitions)]
                self._round_robin += 1
            else:
                partition = self.partitioner(message.key, partitions, partitions)
            grouped.setdefault(partition, []).append(message)
        return grouped


async def acknowledged(deliveries: Sequence[asyncio.Future[Any]]) -> None:
    """Wait for every delivery, even after a failure (none goes unretrieved); raise the first failure."""
    if not deliveries:
        return
    outcomes = await asyncio.gather(*deliveries, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
