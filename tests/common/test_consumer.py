"""The consumer base every consuming service shares: batching by size and time (linger), commit only
after the batch was handled and its dead letters published, a failing batch read again, RetryLater,
the start and stop hooks, metrics through sensors, and canonical-event decoding for readers of
`aoc.events` — on the embedded log, with consumers written as a service writes one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from aoc_common import topics
from aoc_common.consumed_events import ConsumedEvent
from aoc_common.dead_letter import DeadLetter
from aoc_common.engines import Engines
from aoc_common.message_log.base import Message, MessageLog, Record
from aoc_common.message_log.consumer import (
    Consumer,
    ConsumerSensor,
    EventConsumer,
    ReadAheadConsumer,
    RetryLater,
    run_consumer,
)
from tests.utils.consumers import running
from tests.utils.records import fixture_events
from tests.utils.topic_io import publish_events, read_topic
from tests.utils.waiting import wait_for

TOPIC = "test.linger"
GROUP = "test-group"


@dataclass
class RecordingSensor(ConsumerSensor):
    """What a dashboard would see, in the order the consumer reported it."""

    seen: list[tuple[str, object]] = field(default_factory=list)

    def on_batch_handled(
        self, consumer: Consumer, records: Sequence[Record], seconds: float
    ) -> None:
        self.seen.append(("handled", [r.offset for r in records]))

    def on_dead_letters(self, consumer: Consumer, dead_letters: Sequence[DeadLetter]) -> None:
        self.seen.append(("dead letters", len(dead_letters)))

    def on_commit_completed(self, consumer: Consumer, records: Sequence[Record]) -> None:
        self.seen.append(("committed", [r.offset for r in records]))

    def on_batch_failed(self, consumer: Consumer, error: Exception, retry_in_s: float) -> None:
        self.seen.append(("failed", str(error)))

    def on_lag(self, consumer: Consumer, topic: str, lag: int) -> None:
        self.seen.append(("lag", lag))


class NumbersConsumer(Consumer):
    """Reads numbers; an odd one cannot be used (a dead letter), `fail_first` batches raise."""

    service = "numbers"

    def __init__(self, message_log: MessageLog, *, fail_first: int = 0, **options: object) -> None:
        self.sensor = RecordingSensor()
        super().__init__(
            message_log,
            topics=[TOPIC],
            group=GROUP,
            sensors=[self.sensor],
            **options,  # type: ignore[arg-type]
        )
        self.batches: list[list[int]] = []
        self.fail_first = fail_first
        self.events: list[str] = []

    async def handle(self, records: Sequence[Record]) -> list[DeadLetter]:
        self.batches.append([int(r.value) for r in records])
        if self.fail_first:
            self.fail_first -= 1
            raise RuntimeError("the store is down")
        return [self.dead_letter(r, f"{int(r.value)} is odd") for r in records if int(r.value) % 2]

    async def on_start(self, stop: asyncio.Event) -> None:
        self.events.append("started")

    async def on_stop(self) -> None:
        self.events.append("stopped")


async def publish_numbers(log: MessageLog, numbers: range) -> None:
    await log.ensure_topics([TOPIC], partitions=1)
    await log.publish(TOPIC, [Message(None, str(n).encode()) for n in numbers])


async def test_a_batch_is_committed_after_its_dead_letters_are_published(engines: Engines) -> None:
    log = engines.message_log
    await publish_numbers(log, range(4))
    consumer = NumbersConsumer(log, batch_size=10, lag_every_s=None)

    async with running(consumer):
        assert await wait_for(lambda: log.lag(GROUP, TOPIC), lambda n: n == 0) == 0

    letters = [orjson.loads(r.value) for r in await read_topic(log, topics.DLQ, 2)]
    assert [(d["reason"], d["stage"]) for d in letters] == [
        ("1 is odd", "numbers"),
        ("3 is odd", "numbers"),
    ]
    assert consumer.sensor.seen == [
        ("dead letters", 2),
        ("handled", [0, 1, 2, 3]),
        ("committed", [0, 1, 2, 3]),
    ]
    assert consumer.events == ["started", "stopped"]


async def test_a_failing_batch_is_read_again_from_the_committed_offset(engines: Engines) -> None:
    log = engines.message_log
    await publish_numbers(log, range(0, 6, 2))
    consumer = NumbersConsumer(log, fail_first=1, batch_size=10, lag_every_s=None)

    async with running(consumer):
        assert await wait_for(lambda: log.lag(GROUP, TOPIC), lambda n: n == 0) == 0

    assert consumer.batches == [[0, 2, 4], [0, 2, 4]]
    assert consumer.sensor.seen[0] == ("failed", "the store is down")
    assert consumer.sensor.seen[-1] == ("committed", [0, 1, 2])


async def test_the_lag_is_reported_while_running_and_once_more_after_the_last_commit(
    engines: Engines,
) -> None:
    log = engines.message_log
    await publish_numbers(log, range(0, 4, 2))
    consumer = NumbersConsumer(log, batch_size=10, lag_every_s=60)

    async with running(consumer):
        await wait_for(lambda: log.lag(GROUP, TOPIC), lambda n: n == 0)

    lags = [value for kind, value in consumer.sensor.seen if kind == "lag"]
    assert lags[-1] == 0 and len(lags) == 2  # at start, then after stop (not every 60 s)


class ForwardingConsumer(EventConsumer):
    """A reader of aoc.events that refuses events from Intune."""

    service = "forwarding"
    reader = "forwarder"

    def __init__(self, message_log: MessageLog) -> None:
        super().__init__(message_log, topics=[topics.EVENTS], group="test-forwarding")
        self.received: list[str] = []

    async def handle_events(self, events: Sequence[ConsumedEvent]) -> list[DeadLetter]:
        self.received += [c.event.dedupe_key for c in events if c.event.source != "intune"]
        return [
            self.dead_letter(c.record, "Intune events are not forwarded")
            for c in events
            if c.event.source == "intune"
        ]


async def test_an_event_consumer_gets_canonical_events_and_dead_letters_the_rest(
    engines: Engines, fixtures_dir: Path
) -> None:
    log = engines.message_log
    events = fixture_events(fixtures_dir)
    directory = next(e for e in events if e.source == "directory")
    intune = next(e for e in events if e.source == "intune")
    await log.publish(topics.EVENTS, [Message(b"broken", b"{not json")])
    await publish_events(log, [directory, intune])
    await log.publish(topics.EVENTS, [Message(b"future", b'{"schema_version": 99}')])
    consumer = ForwardingConsumer(log)

    async with running(consumer):
        await wait_for(lambda: log.lag("test-forwarding", topics.EVENTS), lambda n: n == 0)

    assert consumer.received == [directory.dedupe_key]
    letters = [orjson.loads(r.value) for r in await read_topic(log, topics.DLQ, 3)]
    assert [(d["key"], d["stage"]) for d in letters] == [
        ("broken", "forwarding"),
        ("future", "forwarding"),
        (intune.dedupe_key, "forwarding"),
    ]
    assert letters[0]["reason"].startswith("not a canonical event")
    assert letters[2]["reason"] == "Intune events are not forwarded"


# --- read-ahead: the next batch read while one is written ------------------------------------------


class GatedWriter(ReadAheadConsumer[list[int]]):
    """Reads numbers; writes wait for `gate` while it is given, and `fail_once` fails one write."""

    service = "gated"

    def __init__(
        self, message_log: MessageLog, *, gate: asyncio.Event | None = None, fail_once: int = -1
    ) -> None:
        self.sensor = RecordingSensor()
        super().__init__(
            message_log,
            topics=[TOPIC],
            group=GROUP,
            batch_size=2,
            lag_every_s=None,
            sensors=[self.sensor],
        )
        self.gate = gate
        self.fail_once = fail_once
        self.seen: list[tuple[str, list[int]]] = []

    def read(self, records: Sequence[Record]) -> list[int]:
        self.seen.append(("read", [int(r.value) for r in records]))
        return [int(r.value) for r in records]

    async def write(self, batch: list[int]) -> list[DeadLetter]:
        self.seen.append(("writing", batch))
        if self.gate is not None:
            await self.gate.wait()
        if batch[0] == self.fail_once:
            self.fail_once = -1
            raise RuntimeError("the store is down")
        self.seen.append(("written", batch))
        return []

    def committed(self) -> list[object]:
        return [offsets for kind, offsets in self.sensor.seen if kind == "committed"]


async def test_the_next_batch_is_read_while_one_is_written_and_commits_stay_in_order(
    engines: Engines,
) -> None:
    log = engines.message_log
    await publish_numbers(log, range(6))
    gate = asyncio.Event()
    consumer = GatedWriter(log, gate=gate)

    async with running(consumer):
        seen = await wait_for(lambda: consumer.seen, lambda seen: ("read", [2, 3]) in seen)
        assert seen == [("read", [0, 1]), ("writing", [0, 1]), ("read", [2, 3])]
        assert await log.committed(GROUP, TOPIC) == {0: None}  # nothing before its write ends
        gate.set()
        await wait_for(lambda: log.lag(GROUP, TOPIC), lambda n: n == 0)

    writes = [(kind, batch) for kind, batch in consumer.seen if kind != "read"]
    assert writes == [("writing", [0, 1]), ("written", [0, 1])] + [
        (kind, batch) for batch in ([2, 3], [4, 5]) for kind in ("writing", "written")
    ]
    assert consumer.committed() == [[0, 1], [2, 3], [4, 5]]


async def test_a_failed_write_drops_the_batch_read_ahead_and_both_are_read_again(
    engines: Engines,
) -> None:
    log = engines.message_log
    await publish_numbers(log, range(6))
    consumer = GatedWriter(log, fail_once=2)

    async with running(consumer):
        await wait_for(lambda: log.lag(GROUP, TOPIC), lambda n: n == 0)

    attempts = [batch for kind, batch in consumer.seen if kind == "writing"]
    assert attempts == [[0, 1], [2, 3], [2, 3], [4, 5]]
    assert ("read", [4, 5]) in consumer.seen[: consumer.seen.index(("writing", [2, 3])) + 2]
    assert consumer.committed() == [[0, 1], [2, 3], [4, 5]]
    failed = consumer.sensor.seen.index(("failed", "the store is down"))
    assert consumer.sensor.seen.index(("committed", [2, 3])) > failed


async def test_on_stop_the_batch_being_written_is_committed_and_the_one_read_ahead_is_not(
    engines: Engines,
) -> None:
    log = engines.message_log
    await publish_numbers(log, range(4))
    gate = asyncio.Event()
    consumer = GatedWriter(log, gate=gate)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await wait_for(lambda: consumer.seen, lambda seen: ("read", [2, 3]) in seen)
    stop.set()
    gate.set()
    await asyncio.wait_for(task, 30)

    assert [batch for kind, batch in consumer.seen if kind == "written"] == [[0, 1]]
    assert await log.committed(GROUP, TOPIC) == {0: 2}  # [2, 3] is read again by the next run


# --- batching by size and time, and RetryLater (run_consumer: a handler function) ----------------


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
            group=GROUP,
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
    committed = await log.committed(GROUP, TOPIC)

    assert [offsets for _, offsets in calls] == [[0, 1, 2], [0, 1, 2]]
    assert calls[1][0] - calls[0][0] >= 0.45
    assert committed == {0: 3}
