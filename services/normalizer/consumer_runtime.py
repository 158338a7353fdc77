"""The normalizer on Kafka without Faust (`NORMALIZER_RUNTIME=consumer`): AOC's own aiokafka consumer
around the same step as the other two shells.

Why it exists: Faust's per-message machinery (fetcher task pairs, conductor, stream, sensors) caps a
worker well below the broker's consume→produce floor even when the agent does no work at all (see
bench/README.md). This shell keeps the Faust app's design — one consumer group `aoc-normalizer`, one
hop, dedupe state on the raw partition with its changelog — and drops the per-message costs:

    aoc.raw.<source> ──getmany──▶ step.process ──record batches──▶ aoc.events / aoc.dlq
                                   │            acks ▶ sightings changelog ▶ commit
                                   └ dedupe sightings in memory, per raw partition

Per batch, in this order: run the step (map, dedupe, name); send events and dead letters as whole
record batches; once the broker acknowledged them, write the batch's sightings (one changelog record per
raw partition, the Faust table's format) and wait for that acknowledgement; then commit the batch's
offsets. At-least-once, never lost: a crash anywhere before the commit re-reads the batch, and a
re-read key whose sightings reached the changelog is dropped as a duplicate.

The acknowledgements, changelog write and commit of batch N run while batch N+1 is fetched and mapped
(depth one: N's commit always precedes N+1's). Batch N's keys count as seen for batch N+1 at once; if
N then fails, the member leaves the group and rejoins, rebuilding its sightings from the changelog.

Scale-out: every member subscribes to every raw topic with Kafka's range assignor, which gives one
member partition p of every raw topic (they must all have the changelog's partition count, as Faust
requires too). A partition that arrives is restored from changelog partition p before any of its
records is handled; before partitions are revoked the batch in hand is finished and committed, so the
next owner restores everything this member published. A stopped member leaves its group at any
generation (Tansu's first is 0).

Switching with the Faust runtime: same group, same topics, same changelogs — stop every member of one
runtime, start the other; committed offsets and dedupe sightings carry over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    RebalanceInProgressError,
)

from aoc_common import topics
from aoc_common.events import utc_now
from aoc_common.logging import get_logger
from aoc_common.message_log.base import MessageLogError, Record
from aoc_common.message_log.consumer import backoff_delay
from aoc_common.message_log.kafka import (
    MAX_MESSAGE_BYTES,
    KafkaMessageLog,
    leave_group_at_generation_zero,
)
from aoc_common.message_log.record_batches import acknowledged
from aoc_common.metrics import BATCH_SECONDS, CONSUMER_LAG, MESSAGES_CONSUMED, MESSAGES_PUBLISHED
from aoc_common.settings import Settings
from aoc_normalizer.changelog import (
    DEDUPE_TABLE,
    NAMES_CHANGELOG_CONFIG,
    NAMES_TABLE,
    changelog_topic,
    decoded,
    dedupe_changelog_config,
    names_from,
)
from aoc_normalizer.dedupe import now_ms
from aoc_normalizer.enrichment import DirectoryLookup
from aoc_normalizer.mappings import LiveMappings
from aoc_normalizer.partition_state import ChangelogNameCache, PartitionSightings
from aoc_normalizer.step import SERVICE, NormalizerStep, Processed

log = get_logger(__name__)

DEDUPE_CHANGELOG = changelog_topic(DEDUPE_TABLE)
NAMES_CHANGELOG = changelog_topic(NAMES_TABLE)
PURGE_EVERY_S = 3600.0
LAG_EVERY_S = 15.0
_LOST_TO_REBALANCE = (CommitFailedError, IllegalStateError, RebalanceInProgressError)


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    """Batching of the consumer runtime; tests and benches may change it."""

    batch_size: int = 1000
    fetch_timeout_s: float = 0.5


class PartitionsMismatch(MessageLogError):
    """The raw topics and the sightings changelog do not have one partition count."""


class ConsumerNormalizer:
    """The consumer runtime: `run(stop)` until stopped; failures rejoin the group after a backoff."""

    def __init__(
        self,
        settings: Settings,
        *,
        mappings: LiveMappings,
        lookup: DirectoryLookup | None = None,
        options: ConsumerOptions | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or ConsumerOptions()
        self.sightings = PartitionSightings()
        self.names = ChangelogNameCache(settings.kafka_topic_partitions)
        self.step = NormalizerStep.from_settings(
            settings,
            seen=self.sightings,
            names=self.names,
            lookup=lookup,
            mappings=mappings,
            workers=settings.normalizer_workers,
        )
        self.message_log = KafkaMessageLog.from_settings(settings, client_id="aoc-normalizer")
        self._purged_at = time.monotonic()

    @property
    def mappings(self) -> LiveMappings:
        return self.step.mappings

    @property
    def timeout_s(self) -> float:
        return self.settings.kafka_request_timeout_ms / 1000

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop`: the batch in hand is finished and committed, then the group is left."""
        await self.message_log.start()
        restorer = self._consumer(group=None)
        try:
            await self._bounded("connect (changelog reader)", restorer.start())
            await self.prepare_topics()
            await self.restore_names(restorer)
            failures = 0
            while not stop.is_set():
                try:
                    await Membership(self, restorer).run(stop)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    failures += 1
                    delay = backoff_delay(failures)
                    log.warning(
                        "normalizer batch failed; rejoining from the committed offsets",
                        error=f"{type(error).__name__}: {error}",
                        retry_in_s=round(delay, 2),
                        failures=failures,
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
        finally:
            with contextlib.suppress(KafkaError, TimeoutError, OSError):
                await asyncio.wait_for(restorer.stop(), self.timeout_s)
            await self.message_log.stop()
            self.step.close()

    async def prepare_topics(self) -> None:
        """Every topic this runtime reads or writes, created as Faust would create its changelogs."""
        message_log = self.message_log
        await message_log.ensure_topics([*topics.RAW_TOPICS, topics.EVENTS, topics.DLQ])
        counts = {topic: len(await message_log.partitions(topic)) for topic in topics.RAW_TOPICS}
        raw_counts = set(counts.values())
        if len(raw_counts) != 1:
            raise PartitionsMismatch(
                f"the raw topics must have one partition count (their partition p shares one "
                f"dedupe changelog partition): {counts}"
            )
        partitions = raw_counts.pop()
        window_ms = self.step.dedupe.window_ms
        await message_log.ensure_topics(
            [DEDUPE_CHANGELOG], partitions, config=dedupe_changelog_config(window_ms)
        )
        changelog_partitions = len(await message_log.partitions(DEDUPE_CHANGELOG))
        if changelog_partitions != partitions:
            raise PartitionsMismatch(
                f"{DEDUPE_CHANGELOG} has {changelog_partitions} partitions, the raw topics "
                f"{partitions}: give them one count"
            )
        await message_log.ensure_topics([NAMES_CHANGELOG], config=NAMES_CHANGELOG_CONFIG)
        self.names.partitions = len(await message_log.partitions(NAMES_CHANGELOG))

    async def restore_names(self, restorer: AIOKafkaConsumer) -> None:
        """The whole name cache from its compacted changelog (a cache: any member may use any entry)."""
        tps = [TopicPartition(NAMES_CHANGELOG, p) for p in range(self.names.partitions)]
        records = await read_to_end(restorer, tps, self.timeout_s)
        names = names_from((m.key, m.value) for tp in tps for m in records[tp])
        self.names.restore(names)
        if names:
            log.info("directory names restored from the changelog", count=len(names))

    def forget_expired(self) -> None:
        if time.monotonic() - self._purged_at < PURGE_EVERY_S:
            return
        self._purged_at = time.monotonic()
        forgotten = self.sightings.forget_before(
            self.step.dedupe.expired_before_ms(now_ms(utc_now()))
        )
        if forgotten:
            log.info("dedupe window: forgot expired keys", count=forgotten)

    def _consumer(self, group: str | None) -> AIOKafkaConsumer:
        settings = self.settings
        return AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id="aoc-normalizer",
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Partition p of every raw topic to one member: its sightings share changelog partition p.
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
            request_timeout_ms=settings.kafka_request_timeout_ms,
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
        )

    async def _bounded(self, what: str, call: Any, timeout_s: float | None = None) -> Any:
        limit = self.timeout_s if timeout_s is None else timeout_s
        try:
            return await asyncio.wait_for(call, limit)
        except (KafkaError, TimeoutError, OSError) as error:
            raise MessageLogError(
                f"Kafka at {self.settings.kafka_bootstrap_servers}: {what} failed "
                f"({type(error).__name__}: {error or f'no answer within {limit:g} s'})"
            ) from error


class Membership(ConsumerRebalanceListener):  # type: ignore[misc]
    """One membership of group `aoc-normalizer`: joins, handles batches, leaves. A failure ends it.

    `lock` is held while a fetched batch is handed over and while partitions are restored, so a
    rebalance never interleaves with a batch: the revoke callback waits for the batch in hand, finishes
    and commits it; records fetched before a rebalance but not yet handled are dropped (`generation`
    changed) and re-read from the committed offsets by whoever owns them now.
    """

    def __init__(self, normalizer: ConsumerNormalizer, restorer: AIOKafkaConsumer) -> None:
        self.normalizer = normalizer
        self.restorer = restorer
        self.consumer = normalizer._consumer(topics.NORMALIZER_GROUP)
        self.lock = asyncio.Lock()
        self.generation = 0
        self.finishing: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None
        self.intact: set[int] = set()  # partitions whose sightings are still right after a revoke
        self.ready: set[int] = (
            set()
        )  # raw partitions whose sightings are in memory, this generation
        self._lag_at = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        normalizer = self.normalizer
        normalizer.sightings.drop(normalizer.sightings.partitions)  # rebuilt on assignment
        consumer = self.consumer
        consumer.subscribe(list(topics.RAW_TOPICS), listener=self)
        try:
            await normalizer._bounded(f"join group {topics.NORMALIZER_GROUP!r}", consumer.start())
            while not stop.is_set():
                generation = self.generation
                # Not wrapped in wait_for: nothing may run between this return and taking the lock
                # (getmany is bounded by its own timeout and waits out a rebalance by itself).
                fetched = await consumer.getmany(
                    timeout_ms=int(normalizer.options.fetch_timeout_s * 1000),
                    max_records=normalizer.options.batch_size,
                )
                async with self.lock:
                    self._raise_failure()
                    records = records_of(fetched)
                    if records and (generation != self.generation or not self.ready_for(records)):
                        self.rewind(records)  # fetched across a rebalance: read again, in order
                    elif records:
                        await self.hand_over(records)
                    elif self.finishing is not None and self.finishing.done():
                        await self.finished()
                normalizer.forget_expired()
                await self._report_lag()
            async with self.lock:
                await self.finished()
                self._raise_failure()
        finally:
            if self.finishing is not None and not self.finishing.done():
                with contextlib.suppress(Exception):
                    await self.finished()
            await leave_group_at_generation_zero(consumer, normalizer.timeout_s)
            with contextlib.suppress(KafkaError, TimeoutError, OSError):
                await asyncio.wait_for(consumer.stop(), normalizer.timeout_s)

    async def hand_over(self, records: list[Record]) -> None:
        """Map the batch while the previous one finishes; then let this one finish in the background."""
        normalizer = self.normalizer
        started = time.perf_counter()
        processed = await normalizer.step.process(records)
        # Seen at once for the next batch; rebuilt from the changelog if this batch fails.
        normalizer.sightings.remember(processed.remember, processed.at_ms)
        message_log = normalizer.message_log
        deliveries = await message_log.send(topics.EVENTS, processed.event_messages())
        deliveries += await message_log.send(topics.DLQ, processed.dead_letter_messages())
        await self.finished()  # the previous batch: its commit comes before this one's
        self._raise_failure()  # …and if it failed, this one must not be committed either
        self.finishing = asyncio.create_task(self.finish(records, processed, deliveries, started))

    async def finish(
        self,
        records: Sequence[Record],
        processed: Processed,
        deliveries: list[asyncio.Future[Any]],
        started: float,
    ) -> None:
        """Acknowledged outputs → sightings (and names) in the changelog → offsets committed."""
        normalizer = self.normalizer
        message_log = normalizer.message_log
        await normalizer._bounded("publish", acknowledged(deliveries), 2 * normalizer.timeout_s)
        changelog: list[asyncio.Future[Any]] = []
        sightings = PartitionSightings.changelog_messages(processed.remember, processed.at_ms)
        for partition, message in sightings.items():
            changelog += await message_log.send_to_partition(DEDUPE_CHANGELOG, partition, [message])
        for partition, message in normalizer.names.take_unsent():
            changelog += await message_log.send_to_partition(NAMES_CHANGELOG, partition, [message])
        await normalizer._bounded("write the changelog", acknowledged(changelog))
        await self.commit(records)
        if processed.events:
            MESSAGES_PUBLISHED.labels(SERVICE, topics.EVENTS).inc(len(processed.events))
        for topic, count in _counts_by_topic(records).items():
            MESSAGES_CONSUMED.labels(SERVICE, topic).inc(count)
        BATCH_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)

    async def commit(self, records: Sequence[Record]) -> None:
        """The offsets after `records`, for the partitions this member still owns."""
        owned = self.consumer.assignment()
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            if tp in owned:
                offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        if not offsets:
            return
        try:
            await asyncio.wait_for(self.consumer.commit(offsets), self.normalizer.timeout_s)
        except _LOST_TO_REBALANCE as error:
            # The next owner re-reads these records; their keys are in the changelog: dropped there.
            log.warning("commit lost to a rebalance", error=str(error))

    async def finished(self) -> None:
        """Wait for the batch that is finishing; a failure is kept and ends the membership."""
        finishing, self.finishing = self.finishing, None
        if finishing is None:
            return
        try:
            await finishing
        except Exception as error:
            self.failure = self.failure or error

    def ready_for(self, records: Sequence[Record]) -> bool:
        """Every record's partition has its sightings restored in this generation."""
        ready = self.ready
        return all(record.partition in ready for record in records)

    def rewind(self, records: Sequence[Record]) -> None:
        """Records not handled: the partitions this member owns go back to the first of them."""
        firsts: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            firsts[tp] = min(firsts.get(tp, record.offset), record.offset)
        owned = self.consumer.assignment()
        for tp, offset in firsts.items():
            if tp in owned:
                self.consumer.seek(tp, offset)

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    # --- rebalances (called by aiokafka's coordinator task) --------------------------------------------

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        async with self.lock:
            self.generation += 1
            self.ready = set()
            await self.finished()
            self.intact = set() if self.failure else {tp.partition for tp in revoked}

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        async with self.lock:
            normalizer = self.normalizer
            sightings = normalizer.sightings
            partitions = {tp.partition for tp in assigned if tp.topic in topics.RAW_TOPICS}
            sightings.drop(sightings.partitions - (partitions & self.intact))
            missing = sorted(partitions - self.intact)
            self.intact = set()
            try:
                await self.restore(missing)
            except Exception as error:
                self.failure = self.failure or error
            else:
                self.ready = partitions

    async def restore(self, partitions: Sequence[int]) -> None:
        """Sightings of `partitions` from the changelog, before any of their records is handled."""
        if not partitions:
            return
        started = time.perf_counter()
        tps = [TopicPartition(DEDUPE_CHANGELOG, p) for p in partitions]
        records = await read_to_end(self.restorer, tps, self.normalizer.timeout_s)
        sightings = self.normalizer.sightings
        for tp in tps:
            sightings.restore(tp.partition, (decoded(m.value) for m in records[tp]))
        log.info(
            "dedupe sightings restored from the changelog",
            partitions=list(partitions),
            records=sum(len(found) for found in records.values()),
            keys=len(sightings),
            seconds=round(time.perf_counter() - started, 2),
        )

    async def _report_lag(self) -> None:
        """Messages not yet handled, per raw topic, from what the fetcher knows (no broker call)."""
        if time.monotonic() - self._lag_at < LAG_EVERY_S:
            return
        self._lag_at = time.monotonic()
        lag: dict[str, int] = {}
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            with contextlib.suppress(IllegalStateError, KafkaError, TimeoutError):
                position = await asyncio.wait_for(self.consumer.position(tp), 1.0)
                lag[tp.topic] = lag.get(tp.topic, 0) + max(highwater - position, 0)
        for topic, behind in lag.items():
            CONSUMER_LAG.labels(topics.NORMALIZER_GROUP, topic).set(behind)


async def read_to_end(
    reader: AIOKafkaConsumer, tps: Sequence[TopicPartition], timeout_s: float
) -> dict[TopicPartition, list[ConsumerRecord[Any, Any]]]:
    """Everything in `tps` from the start up to their end, read by a group-less consumer.

    Tansu 0.6 reports a partition's end as its last batch's base offset + 1: reaching that position
    means the last batch was fetched, and a fetch returns whole batches, so nothing is left out.
    """
    found: dict[TopicPartition, list[ConsumerRecord[Any, Any]]] = {tp: [] for tp in tps}
    if not tps:
        return found
    reader.assign(list(tps))
    await asyncio.wait_for(reader.seek_to_beginning(*tps), timeout_s)
    ends = await asyncio.wait_for(reader.end_offsets(list(tps)), timeout_s)
    remaining = set(tps)
    progress_at = time.monotonic()
    while remaining:
        for tp in list(remaining):
            if await asyncio.wait_for(reader.position(tp), timeout_s) >= ends[tp]:
                remaining.discard(tp)
        if not remaining:
            break
        if time.monotonic() - progress_at > timeout_s:
            raise MessageLogError(
                f"reading {sorted(remaining)} made no progress in {timeout_s:g} s"
            )
        fetched = await asyncio.wait_for(
            reader.getmany(*remaining, timeout_ms=500, max_records=10_000), timeout_s
        )
        for tp, messages in fetched.items():
            found[tp] += messages
            progress_at = time.monotonic()
    return found


def records_of(fetched: Mapping[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> list[Record]:
    return [
        Record(
            message.topic,
            message.partition,
            message.offset,
            message.key,
            message.value if message.value is not None else b"",
            message.timestamp,
        )
        for tp in sorted(fetched)
        for message in fetched[tp]
    ]


def _counts_by_topic(records: Sequence[Record]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.topic] = counts.get(record.topic, 0) + 1
    return counts


def build_consumer_runtime(
    settings: Settings,
    *,
    lookup: DirectoryLookup | None = None,
    options: ConsumerOptions | None = None,
) -> ConsumerNormalizer:
    """The consumer runtime for `aoc run normalizer` (mappings read now: a bad file stops start)."""
    return ConsumerNormalizer(
        settings, mappings=LiveMappings.load(settings.mappings_path), lookup=lookup, options=options
    )
