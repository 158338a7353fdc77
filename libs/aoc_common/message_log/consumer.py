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
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar

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
        for record in records:
            MESSAGES_CONSUMED.labels(consumer.service, record.topic).inc()

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
        while not stop.is_set():
            try:
                async with self.message_log.subscribe(self.topics, self.group) as subscription:
                    while not stop.is_set():
                        records = await subscription.fetch(self.batch_size, self.fetch_timeout_s)
                        if not records:
                            continue
                        if self.linger_s > 0:
                            records += await _linger(
                                subscription, self.batch_size - len(records), self.linger_s
                            )
                        await self._process(subscription, records)
                        failures = 0
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

    async def _process(self, subscription: Subscription, records: list[Record]) -> None:
        started = time.perf_counter()
        dead_letters = await self.handle(records)
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
