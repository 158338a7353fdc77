"""A real Faust worker on a Kafka-protocol broker (Tansu), stopped in the middle of a stream and started
again as `aoc run normalizer`: every record comes out exactly once, and the stopped worker has left its
consumer group, so `aoc replay --group aoc-normalizer` is accepted at once."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aoc_common import topics
from aoc_common.message_log.base import Message
from aoc_common.message_log.kafka import KafkaMessageLog
from aoc_common.service import serve
from aoc_normalizer.service import DEFINITION as NORMALIZER
from tests.engines.kafka_server import kafka_service_settings, kafka_test_options
from tests.utils.records import directory_records, raw_record

PARTITIONS = 3
RECORDS = 300


@pytest.fixture
async def kafka_log(private_kafka_bootstrap: str) -> AsyncIterator[KafkaMessageLog]:
    message_log = KafkaMessageLog(
        private_kafka_bootstrap, default_partitions=PARTITIONS, **kafka_test_options()
    )
    await message_log.start()
    await message_log.ensure_topics(topics.ALL_TOPICS, partitions=PARTITIONS)
    yield message_log
    await message_log.stop()


async def read_events(
    message_log: KafkaMessageLog, group: str, until: int, timeout_s: float = 150
) -> list[bytes]:
    """Keys of events on aoc.events read by `group` (from where it left off) until `until` are in."""
    keys: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    async with message_log.subscribe([topics.EVENTS], group) as reader:
        while len(keys) < until and time.monotonic() < deadline:
            records = await reader.fetch(500, 0.5)
            keys += [r.key or b"" for r in records]
            await reader.commit(records)
    return keys


@pytest.mark.timeout(420)  # two Faust worker starts and group joins: slow on a busy 2-core machine
async def test_a_worker_stopped_mid_stream_and_restarted_loses_nothing_and_repeats_nothing(
    kafka_log: KafkaMessageLog, private_kafka_bootstrap: str, tmp_path: Path, fixtures_dir: Path
) -> None:
    template = directory_records(fixtures_dir)[0]
    records = [{**template, "id": f"Directory_restart_{n:04d}"} for n in range(RECORDS)]
    redelivered = records[:20]  # overlapping fetch windows: the same records again
    messages = [
        Message(r["id"].encode(), raw_record("directory", r).value)
        for r in [*records, *redelivered]
    ]
    raw = topics.raw_topic("directory")
    await kafka_log.publish(raw, messages[: RECORDS // 2])

    reader_group = f"test-{uuid.uuid4().hex}"
    stop = asyncio.Event()
    first = asyncio.create_task(
        serve(
            NORMALIZER,
            kafka_service_settings(private_kafka_bootstrap, tmp_path / "first", PARTITIONS),
            stop,
        )
    )
    try:
        seen = await read_events(kafka_log, reader_group, until=RECORDS // 4)
        assert len(seen) >= RECORDS // 4, "the first worker published nothing"
    finally:
        stop.set()  # mid-stream: a graceful stop flushes, commits and leaves the group
        await asyncio.wait_for(first, timeout=60)

    # The group is empty at once (Tansu numbers the first generation 0: the worker had to say so).
    replay = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aoc_cli.main",
        "replay",
        "--group",
        topics.NORMALIZER_GROUP,
        "--topic",
        topics.raw_topic("intune"),  # a raw topic nobody published to: replaying it changes nothing
        "--offset",
        "0",
        env={
            "KAFKA_BOOTSTRAP_SERVERS": private_kafka_bootstrap,
            "KAFKA_ENABLE_IDEMPOTENCE": "false",
            "DATA_DIR": str(tmp_path / "replay"),
            "PATH": "/usr/bin:/bin",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(replay.communicate(), timeout=60)
    assert replay.returncode == 0, output.decode()

    await kafka_log.publish(raw, messages[RECORDS // 2 :])  # the rest, and the redeliveries
    stop = asyncio.Event()
    second = asyncio.create_task(
        serve(
            NORMALIZER,
            kafka_service_settings(private_kafka_bootstrap, tmp_path / "second", PARTITIONS),
            stop,
        )
    )
    try:
        seen += await read_events(kafka_log, reader_group, until=RECORDS - len(seen))
        seen += await read_events(kafka_log, reader_group, until=1, timeout_s=3)  # nothing more
    finally:
        stop.set()
        await asyncio.wait_for(second, timeout=60)

    wanted = {f"directory:{r['id']}".encode() for r in records}
    repeated = sorted(k for k, n in Counter(seen).items() if n > 1)
    missing = sorted(wanted - set(seen))
    if missing:  # a late arrival, or lost? Read the whole topic again to tell which.
        on_topic = set(
            await read_events(
                kafka_log, f"audit-{uuid.uuid4().hex}", until=len(wanted), timeout_s=30
            )
        )
        missing = [
            (key, "on aoc.events, read late" if key in on_topic else "never published")
            for key in missing
        ]
    assert (repeated, missing) == ([], []), f"{len(repeated)} repeated, {len(missing)} missing"
    assert len(seen) == RECORDS
