"""The imperative shell every consuming service shares: one consumer group, batch by batch.

`Consumer` owns the run loop (fetch, linger, hand over, commit), dead-lettering, retries with backoff
and metrics, so that a service says only what a batch is for (`handle`), as a quix-streams sink only
writes. `EventConsumer` adds what every reader of `aoc.events` does first: validate each record as a
canonical event and dead-letter the ones it cannot use.

Offsets are committed only after `handle` returned and its dead letters were acknowledged by the log, so
a crash or a failing dependency (the store is down, the SIEM answers 503) means the batch is read again:
at-least-once, never lost. When `handle` raises, the member leaves the group and rejoins after a backoff,
which rewinds it to the committed offset. A handler must therefore return bad *records* as dead letters
and raise only for failures worth retrying: a poison message must never stop a consumer.

Metrics are hooks (`ConsumerSensor`, after Faust's sensors): counters stay out of business code.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar, Generic, TypeVar

from aoc_common import topics as topic_names
from aoc_common.consumed_events import (
    ConsumedEvent,
    dead_letter_for_record,
    dead_letter_messages,
    decode_canonical_events,
)
from aoc_common.dead_letter import DeadLetter
from aoc_common.logging import get_logger
from aoc_common.message_log.base import MessageLog, MessageLogError, Record, Subscription
from aoc_common.metrics import BATCH_SECONDS, CONSUMER_LAG, DEAD_LETTERS, MESSAGES_CONSUMED

BatchHandler = Callable[[Sequence[Record]], Awaitable[None]]

LAG_EVERY_S = 15.0
LAG_TIMEOUT_S = 10.0

log = get_logger(__name__)


class RetryLater(Exception):
    """Raised by a handler that knows how long to wait, e.g. while a circuit breaker is open.

    The consumer does not count it as a failure: it leaves the group, waits exactly `delay_s`, and rejoins
    from the committed offset, so the batch in hand is read again then.
    """

    def __init__(self, delay_s: float, reason: str) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


def backoff_delay(attempt: int, *, base_s: float = 0.5, cap_s: float = 30.0) -> float:
    """Exponential backoff with full jitter (attempt 1 → up to base_s, doubling, capped)."""
    return random.uniform(0, min(cap_s, base_s * 2 ** (attempt - 1)))  # noqa: S311 - jitter, not crypto


class ConsumerSensor:
    """Hooks a consumer calls as batches go through; each does nothing unless overridden."""

    def on_batch_handled(
        self, consumer: Consumer, records: Sequence[Record], seconds: float
    ) -> None:
        """`handle` returned for `records` after `seconds` (dead letters published, not committed)."""

    def on_dead_letters(self, consumer: Consumer, dead_letters: Sequence[DeadLetter]) -> None:
        """`dead_letters` were acknowledged on the dead-letter topic."""

    def on_commit_completed(self, consumer: Consumer, records: Sequence[Record]) -> None:
        """The offsets after `records` are committed: the batch is done."""

    def on_batch_failed(self, consumer: Consumer, error: Exception, retry_in_s: float) -> None:
        """The batch failed; the consumer rejoins from the committed offset after `retry_in_s`."""

    def on_lag(self, consumer: Consumer, topic: str, lag: int) -> None:
        """`lag` messages of `topic` are not yet committed by the consumer's group."""


class PrometheusSensor(ConsumerSensor):
    """The metrics every consumer exposes, labelled with its service (see aoc_common.metrics)."""

    def on_batch_handled(
        self, consumer: Consumer, records: Sequence[Record], seconds: float
    ) -> None:
        BATCH_SECONDS.labels(consumer.service).observe(seconds)

    def on_dead_letters(self, consumer: Consumer, dead_letters: Sequence[DeadLetter]) -> None:
        DEAD_LETTERS.labels(consumer.service, consumer.service).inc(len(dead_letters))

    def on_commit_completed(self, consumer: Consumer, records: Sequence[Record]) -> None:
        # Counted per topic, then added once (the store sink commits 2,000 records at a time).
        for topic, count in Counter(record.topic for record in records).items():
            MESSAGES_CONSUMED.labels(consumer.service, topic).inc(count)

    def on_lag(self, consumer: Consumer, topic: str, lag: int) -> None:
        CONSUMER_LAG.labels(consumer.group, topic).set(lag)


class Consumer(ABC):
    """One consumer group on the message log; a subclass implements `handle` and nothing else is
    required. `on_start` and `on_stop` are for what the service holds: default rules to seed, a
    connection to close.

    With `linger_s` > 0 a batch is handed over when it holds `batch_size` records or when its first
    record has waited `linger_s`, whichever comes first (like Kafka's `linger.ms`): a consumer whose
    handler pays per call (an HTTP request to a SIEM) then makes fewer, fuller calls. Every
    `lag_every_s` (and once more after the last commit) the group's lag goes to the sensors.
    """

    service: ClassVar[str]
    """Names the consumer in metrics and logs, and is the `stage` of its dead letters."""

    def __init__(
        self,
        message_log: MessageLog,
        *,
        topics: Sequence[str],
        group: str,
        batch_size: int = 500,
        fetch_timeout_s: float = 0.5,
        linger_s: float = 0.0,
        lag_every_s: float | None = LAG_EVERY_S,
        sensors: Sequence[ConsumerSensor] = (),
    ) -> None:
        self.message_log = message_log
        self.topics = list(topics)
        self.group = group
        self.batch_size = batch_size
        self.fetch_timeout_s = fetch_timeout_s
        self.linger_s = linger_s
        self.lag_every_s = lag_every_s
        self.sensors: list[ConsumerSensor] = [PrometheusSensor(), *sensors]

    @abstractmethod
    async def handle(self, records: Sequence[Record]) -> Sequence[DeadLetter]:
        """Do what the batch is for; return a dead letter for each record that cannot be used.

        Raise to have the batch read again after a backoff (`RetryLater` for a known wait).
        """

    def dead_letter(self, record: Record, reason: str) -> DeadLetter:
        """The dead letter of `record`, which this consumer cannot use because of `reason`."""
        return dead_letter_for_record(record, reason, stage=self.service)

    async def on_start(self, stop: asyncio.Event) -> None:  # noqa: B027 - a hook, empty by default
        """Before joining the group (may wait for a dependency, until `stop`)."""

    async def on_stop(self) -> None:  # noqa: B027 - a hook, empty by default
        """After leaving the group for good, even when `run` ends by an error."""

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set: the batch in hand is finished and committed first."""
        lag = asyncio.create_task(self._report_lag(stop)) if self.lag_every_s else None
        try:
            await self.on_start(stop)
            await self._consume(stop)
            if lag is not None:
                await lag  # stop is set: it reports once more, after the last commit, and ends
        finally:
            if lag is not None and not lag.done():
                lag.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lag
            await self.on_stop()

    async def _consume(self, stop: asyncio.Event) -> None:
        failures = 0

        def succeeded() -> None:
            nonlocal failures
            failures = 0

        while not stop.is_set():
            try:
                async with self.message_log.subscribe(self.topics, self.group) as subscription:
                    await self._consume_batches(subscription, stop, succeeded)
            except asyncio.CancelledError:
                raise
            except RetryLater as pause:
                log.warning(
                    "consumer paused; rejoining from the committed offset",
                    group=self.group,
                    reason=str(pause),
                    retry_in_s=round(pause.delay_s, 2),
                )
                await _wait(stop, pause.delay_s)
            except Exception as error:
                failures += 1
                delay = backoff_delay(failures)
                log.warning(
                    "batch failed; rejoining from the committed offset",
                    group=self.group,
                    error=f"{type(error).__name__}: {error}",
                    retry_in_s=round(delay, 2),
                    failures=failures,
                )
                for sensor in self.sensors:
                    sensor.on_batch_failed(self, error, delay)
                await _wait(stop, delay)

    async def _consume_batches(
        self, subscription: Subscription, stop: asyncio.Event, committed: Callable[[], None]
    ) -> None:
        """Handle and commit batch after batch until `stop`, calling `committed` after each."""
        while not stop.is_set():
            records = await self._next_batch(subscription)
            if records:
                started = time.perf_counter()
                await self._finish(subscription, records, await self.handle(records), started)
                committed()

    async def _next_batch(self, subscription: Subscription) -> list[Record]:
        """Up to `batch_size` records (none after `fetch_timeout_s` of nothing), lingering for
        more when `linger_s` says so."""
        records = await subscription.fetch(self.batch_size, self.fetch_timeout_s)
        if records and self.linger_s > 0:
            records += await _linger(subscription, self.batch_size - len(records), self.linger_s)
        return records

    async def _finish(
        self,
        subscription: Subscription,
        records: list[Record],
        dead_letters: Sequence[DeadLetter],
        started: float,
    ) -> None:
        """Publish the batch's dead letters, then commit it: the batch is done."""
        if dead_letters:
            await self.message_log.publish(topic_names.DLQ, dead_letter_messages(dead_letters))
            for sensor in self.sensors:
                sensor.on_dead_letters(self, dead_letters)
        elapsed = time.perf_counter() - started
        for sensor in self.sensors:
            sensor.on_batch_handled(self, records, elapsed)
        await subscription.commit(records)
        for sensor in self.sensors:
            sensor.on_commit_completed(self, records)

    async def _report_lag(self, stop: asyncio.Event) -> None:
        """Keep the lag fresh: a consumer falling behind shows up on a dashboard."""
        assert self.lag_every_s is not None
        while True:
            try:
                for topic in self.topics:
                    lag = await asyncio.wait_for(
                        self.message_log.lag(self.group, topic), LAG_TIMEOUT_S
                    )
                    for sensor in self.sensors:
                        sensor.on_lag(self, topic, lag)
            except (MessageLogError, TimeoutError) as error:
                log.warning("could not read the lag", error=f"{type(error).__name__}: {error}")
            if stop.is_set():
                return
            await _wait(stop, self.lag_every_s)


class EventConsumer(Consumer):
    """A reader of the normalized topic: every record is validated as a canonical event first.

    A record that is not one, or whose `schema_version` is newer than this code, is dead-lettered with
    the reason; the rest go to `handle_events` with the records they came from.
    """

    reader: ClassVar[str]
    """What the consumer is, in dead-letter reasons ("newer than this sink")."""

    async def handle(self, records: Sequence[Record]) -> Sequence[DeadLetter]:
        decoded = decode_canonical_events(records, stage=self.service, reader=self.reader)
        refused = await self.handle_events(decoded.events) if decoded.events else []
        return [*decoded.dead_letters, *refused]

    @abstractmethod
    async def handle_events(self, events: Sequence[ConsumedEvent]) -> Sequence[DeadLetter]:
        """Do what the events are for; return a dead letter for each event that cannot be used."""


Batch = TypeVar("Batch")


class ReadAheadConsumer(Consumer, Generic[Batch]):
    """A consumer whose batch is Python work first (`read`: decode the records, on the event loop)
    and waiting second (`write`: a database or a network call that leaves the loop free, such as
    SQLite on the store's thread, which releases the GIL while a statement runs and while the disk
    syncs). Batch N+1 is fetched and read while batch N is written, so on two cores the two
    overlap instead of taking turns.

    Nothing else changes: batches are written one at a time and in order, and a batch is
    committed only after it was written and its dead letters published, before the next one is
    written. When a write fails, the batch read ahead is dropped unwritten and uncommitted, and
    both are read again from the committed offset (at-least-once, as for any consumer). On stop,
    the batch being written is finished and committed; one read ahead is left for the next run.
    """

    @abstractmethod
    def read(self, records: Sequence[Record]) -> Batch:
        """Decode the batch (no I/O: it runs on the event loop while the previous batch is
        written)."""

    @abstractmethod
    async def write(self, batch: Batch) -> Sequence[DeadLetter]:
        """Do what the batch is for; return a dead letter for each record that cannot be used.

        Raise to have the batch read again after a backoff (`RetryLater` for a known wait)."""

    async def handle(self, records: Sequence[Record]) -> Sequence[DeadLetter]:
        """`read` then `write`, one batch on its own (the run loop overlaps them)."""
        return await self.write(self.read(records))

    async def _consume_batches(
        self, subscription: Subscription, stop: asyncio.Event, committed: Callable[[], None]
    ) -> None:
        writing: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                records = await self._next_batch(subscription)
                if not records:
                    if writing is not None and writing.done():
                        await writing  # raises what the write raised
                        writing = None
                        committed()
                    continue
                started = time.perf_counter()
                batch = self.read(records)  # while the previous batch is written
                if writing is not None:
                    await writing  # written and committed before the next write starts
                    writing = None
                    committed()
                if stop.is_set():
                    break  # the batch read ahead is read again by the next run
                writing = asyncio.create_task(
                    self._write_and_finish(subscription, records, batch, started)
                )
                # Let the write begin (hand its batch to the store's thread) before the next
                # batch is fetched and read: a fetch served from memory does not yield.
                await asyncio.sleep(0)
            if writing is not None:
                await writing  # stop: the batch in hand is finished and committed
                writing = None
                committed()
        finally:
            if writing is not None and not writing.done():
                # Leaving on an error or a cancellation: the batch in flight is not committed,
                # so it is read again, like every batch that did not finish.
                writing.cancel()
                with contextlib.suppress(BaseException):
                    await writing

    async def _write_and_finish(
        self, subscription: Subscription, records: list[Record], batch: Batch, started: float
    ) -> None:
        await self._finish(subscription, records, await self.write(batch), started)


class _HandlerConsumer(Consumer):
    """A consumer around a plain handler function (see `run_consumer`)."""

    def __init__(self, message_log: MessageLog, *, service: str, handle: BatchHandler, **options):  # type: ignore[no-untyped-def]
        super().__init__(message_log, **options)
        self.service = service  # type: ignore[misc]
        self._handle = handle

    async def handle(self, records: Sequence[Record]) -> Sequence[DeadLetter]:
        await self._handle(records)
        return []


async def run_consumer(
    message_log: MessageLog,
    *,
    service: str,
    topics: Sequence[str],
    group: str,
    handle: BatchHandler,
    stop: asyncio.Event,
    batch_size: int = 500,
    fetch_timeout_s: float = 0.5,
    linger_s: float = 0.0,
) -> None:
    """Consume `topics` as `group` with a handler function that publishes its own dead letters.

    For a shell that is not a `Consumer` subclass (yet); new consumers subclass `Consumer`.
    """
    consumer = _HandlerConsumer(
        message_log,
        service=service,
        handle=handle,
        topics=topics,
        group=group,
        batch_size=batch_size,
        fetch_timeout_s=fetch_timeout_s,
        linger_s=linger_s,
        lag_every_s=None,
    )
    await consumer.run(stop)


async def _linger(subscription: Subscription, room: int, linger_s: float) -> list[Record]:
    """More records for the batch in hand, until `room` is filled or `linger_s` has passed."""
    more: list[Record] = []
    deadline = time.monotonic() + linger_s
    while len(more) < room:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        more += await subscription.fetch(room - len(more), remaining)
    return more


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def record_lag(message_log: MessageLog, group: str, topics: Sequence[str]) -> int:
    """Update the lag gauge for `group` and return the total over `topics`."""
    total = 0
    for topic in topics:
        lag = await message_log.lag(group, topic)
        CONSUMER_LAG.labels(group, topic).set(lag)
        total += lag
    return total
