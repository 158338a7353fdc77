"""Publishing on Kafka as whole record batches (`record_batches.py`): each key in the partition Kafka's
default partitioner gives it, order kept across several batches of one partition, and a message the
broker would refuse refused before anything is sent."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.partitioner import murmur2

from aoc_common.message_log.base import Message, MessageLogError
from aoc_common.message_log.kafka import MAX_MESSAGE_BYTES, KafkaMessageLog
from aoc_common.message_log.record_batches import RECORD_BATCH_BYTES
from tests.engines.kafka_server import kafka_test_options
from tests.utils.topic_io import read_topic

PARTITIONS = 4


@pytest.fixture
async def kafka_log(kafka_bootstrap: str) -> AsyncIterator[KafkaMessageLog]:
    message_log = KafkaMessageLog(kafka_bootstrap, **kafka_test_options())
    await message_log.start()
    yield message_log
    await message_log.stop()


def java_partition(key: bytes) -> int:
    """Where the Java client, librdkafka's murmur2_random and aiokafka put a keyed message."""
    return (murmur2(key) & 0x7FFFFFFF) % PARTITIONS


async def test_keys_land_where_kafkas_partitioner_puts_them_in_order_across_batches(
    kafka_log: KafkaMessageLog,
) -> None:
    topic = f"aoc.test.{uuid.uuid4().hex[:12]}"
    await kafka_log.ensure_topics([topic], partitions=PARTITIONS)
    keys = [f"directory:{n}".encode() for n in range(8)]
    padding = b"x" * 1000
    per_key = 2 * RECORD_BATCH_BYTES // (len(padding) * len(keys)) + 50  # > 1 batch per partition
    messages = [Message(key, b"%d:" % n + padding) for n in range(per_key) for key in keys]

    await kafka_log.publish(topic, messages)

    received = await read_topic(kafka_log, topic, len(messages))
    assert len(received) == len(messages)
    for key in keys:
        mine = [r for r in received if r.key == key]
        assert {r.partition for r in mine} == {java_partition(key)}
        assert [int(r.value.split(b":")[0]) for r in mine] == list(range(per_key))


async def test_a_message_over_the_limit_fails_the_publish_before_anything_is_sent(
    kafka_log: KafkaMessageLog,
) -> None:
    topic = f"aoc.test.{uuid.uuid4().hex[:12]}"
    await kafka_log.ensure_topics([topic], partitions=1)
    too_big = Message(b"k", b"x" * (MAX_MESSAGE_BYTES + 1))

    with pytest.raises(MessageLogError, match=f"{MAX_MESSAGE_BYTES + 1 + 1} bytes"):
        await kafka_log.publish(topic, [Message(b"k", b"fine"), too_big])

    await kafka_log.publish(topic, [Message(b"k", b"after")])
    assert [r.value for r in await read_topic(kafka_log, topic, 1)] == [b"after"]
