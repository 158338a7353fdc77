"""run_consumer's batching by size and time (linger) and its RetryLater pause, on the embedded log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aoc_common.engines import Engines
from aoc_common.message_log.base import Message, MessageLog, Record
from aoc_common.message_log.consumer import RetryLater, run_consumer

TOPIC = "test.linger"


async def consume_until(
    log: MessageLog,
    handle: object,
    done: asyncio.Event,
    *,
    batch_size: int,
    linger_s: float,
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_consumer(
            log,
            service="test",
            topics=[TOPIC],
            group="test-group",
            handle=handle,  # type: ignore[arg-type]
            stop=stop,
            batch_size=batch_size,
            linger_s=linger_s,
        )
    )
    try:
        await asyncio.wait_for(done.wait(), 30)
    finally:
        stop.set()
        await task


async def test_linger_gathers_messages_published_one_by_one_into_one_batch(
    engines: Engines,
) -> None:
    log = engines.message_log
    batches: list[list[int]] = []
    done = asyncio.Event()

    async def handle(records: Sequence[Record]) -> None:
        batches.append([int(r.value) for r in records])
        if sum(map(len, batches)) >= 5:
            done.set()

    async def publish_one_by_one() -> None:
        for n in range(5):
            await log.publish(TOPIC, [Message(None, str(n).encode())])

    await log.ensure_topics([TOPIC], partitions=1)
    publisher = asyncio.create_task(publish_one_by_one())
    await consume_until(log, handle, done, batch_size=100, linger_s=0.5)
    await publisher

    assert batches == [[0, 1, 2, 3, 4]]


async def test_a_full_batch_does_not_wait_for_the_linger(engines: Engines) -> None:
    log = engines.message_log
    await log.ensure_topics([TOPIC], partitions=1)
    await log.publish(TOPIC, [Message(None, str(n).encode()) for n in range(8)])
    batches: list[list[int]] = []
    done = asyncio.Event()

    async def handle(records: Sequence[Record]) -> None:
        batches.append([int(r.value) for r in records])
        if len(batches) == 2:
            done.set()

    started = time.monotonic()
    await consume_until(log, handle, done, batch_size=4, linger_s=10.0)

    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert time.monotonic() - started < 5


async def test_retry_later_pauses_then_rereads_the_batch_from_the_committed_offset(
    engines: Engines,
) -> None:
    log = engines.message_log
    await log.ensure_topics([TOPIC], partitions=1)
    await log.publish(TOPIC, [Message(None, str(n).encode()) for n in range(3)])
    calls: list[tuple[float, list[int]]] = []
    done = asyncio.Event()

    async def handle(records: Sequence[Record]) -> None:
        calls.append((time.monotonic(), [r.offset for r in records]))
        if len(calls) == 1:
            raise RetryLater(0.5, "peer is down")
        done.set()

    await consume_until(log, handle, done, batch_size=10, linger_s=0)
    committed = await log.committed("test-group", TOPIC)

    assert [offsets for _, offsets in calls] == [[0, 1, 2], [0, 1, 2]]
    assert calls[1][0] - calls[0][0] >= 0.45
    assert committed == {0: 3}
