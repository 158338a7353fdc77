"""The normalizer on Kafka: a Faust app, the second shell around the same step as the embedded runtime.

One hop, in batches:

    aoc.raw.<source> ──normalize-<source> (take_events: step.process)──▶ aoc.events (key dedupe_key)
                     │                                                 └▶ aoc.dlq (dead letters)
                     └ dedupe-seen table (changelog partition = the raw partition)

A raw record's key is its record id (the collector keys it so), and the dedupe key is `<source>:<record
id>`: every sighting of one key is read from one raw partition. So the dedupe table lives on the raw
partition — Faust assigns partition p of every raw topic and of the table's changelog to the same
worker — and no intermediate topic is needed. (A record without an id is keyed by nothing and spread
round-robin; its hash dedupe key is then checked on the partition it landed on, and the store's upsert
on dedupe_key stays the final guard, as everywhere.)

Per batch (up to `FaustOptions.batch_size` records, or whatever arrived within a second): run the step
(map, dedupe against the table, name through Graph with the `directory-names` table as cache), send every
event and dead letter as whole record batches without awaiting each, await the batch's acknowledgements,
and only then remember the keys — one changelog record per raw partition per batch, not one per key.
Faust commits the input offsets after flushing the producer, so a crash republishes (at-least-once; the
dedupe table and the store's upsert absorb it) and never loses an event. The producer is not idempotent,
which also suits brokers without InitProducerId. This module must never let a bad record stop an agent:
the step turns it into a dead letter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import faust
from faust.tables.table import Table
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import EventT, StreamT, TableT, TopicT

from aoc_common import topics
from aoc_common.events import utc_now
from aoc_common.logging import get_logger
from aoc_common.message_log.base import Message, Record
from aoc_common.message_log.kafka import MAX_MESSAGE_BYTES, leave_group_at_generation_zero
from aoc_common.message_log.record_batches import RECORD_BATCH_BYTES, RecordBatchSender
from aoc_common.metrics import MESSAGES_CONSUMED, MESSAGES_PUBLISHED
from aoc_common.settings import Settings
from aoc_common.topics import source_of_raw_topic
from aoc_normalizer.changelog import (
    DEDUPE_TABLE,
    NAMES_TABLE,
    apply_sightings,
    cached_name_of,
    dedupe_changelog_config,
    name_partition,
    name_value,
    sightings_key,
    sightings_value,
)
from aoc_normalizer.dedupe import now_ms
from aoc_normalizer.enrichment import CachedName, DirectoryLookup
from aoc_normalizer.mappings import LiveMappings
from aoc_normalizer.step import SERVICE, NormalizerStep

PURGE_EVERY_S = 3600.0
log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class FaustOptions:
    """What the Faust app needs beyond Settings; tests shorten the timings for Tansu."""

    batch_size: int = 1000
    batch_within_s: float = 1.0
    overrides: Mapping[str, Any] | None = None  # extra faust.App settings


# --- leaving the group on stop, at any generation ---------------------------------------------------


class _LeavingConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, plus a LeaveGroup at generation 0 before the consumer stops.

    aiokafka leaves the group on stop only above generation 0; Tansu numbers the first generation 0 and
    never expires a member, so without this the stopped worker would keep `aoc-normalizer` "active"
    and `aoc replay --group aoc-normalizer` would be refused for ever.
    """

    async def on_thread_stop(self) -> None:
        if self._consumer is not None:
            timeout_s = float(self.app.conf.broker_request_timeout)
            await leave_group_at_generation_zero(self._consumer, timeout_s)
        await super().on_thread_stop()


class _LeavingConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _LeavingConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer: ClassVar[Any] = _LeavingConsumer


class NormalizerFaustApp(faust.App):
    """faust.App on the aiokafka transport, with a consumer that always leaves its group on stop."""

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


def faust_app(settings: Settings, overrides: Mapping[str, Any] | None = None) -> faust.App:
    """The Faust app, configured from Settings: one consumer group `aoc-normalizer`, like the other shell."""
    (settings.data_dir / "faust").parent.mkdir(parents=True, exist_ok=True)
    servers = [s.strip() for s in (settings.kafka_bootstrap_servers or "").split(",") if s.strip()]
    config: dict[str, Any] = {
        # No server configured: Faust's own default (unit tests run it in test mode, never connecting).
        "broker": [f"kafka://{server}" for server in servers] or "kafka://localhost:9092",
        "store": "memory://",  # tables are rebuilt from their changelog topics at start
        "autodiscover": False,
        "web_enabled": False,
        "datadir": str(settings.data_dir / "faust"),
        "topic_partitions": settings.kafka_topic_partitions,
        "topic_replication_factor": settings.kafka_replication_factor,
        "broker_session_timeout": settings.kafka_session_timeout_ms / 1000,
        "broker_heartbeat_interval": settings.kafka_heartbeat_interval_ms / 1000,
        "broker_request_timeout": settings.kafka_request_timeout_ms / 1000,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "producer_max_request_size": MAX_MESSAGE_BYTES,
        # Throughput: a produce request carries up to 512 KiB per partition (Kafka's default batch of
        # 16 KiB holds 8 events), and waits 5 ms for more to fill it.
        "producer_max_batch_size": RECORD_BATCH_BYTES,
        "producer_linger_ms": 5,
        "processing_guarantee": "at_least_once",
    }
    config.update(overrides or {})
    return NormalizerFaustApp(topics.NORMALIZER_GROUP, **config)


# --- the tables ---------------------------------------------------------------------------------------


class SightingsTable(Table):
    """Dedupe sightings (`dedupe_key → seen_at_ms`) kept in memory, with a changelog written per batch.

    Each changelog record carries every key a batch published from one raw partition
    (`{"at_ms": …, "keys": […]}`, under a key of its own), on that partition, so remembering a batch
    costs one record instead of one per event, and a restart replays a window's worth of batches
    instead of a window's worth of keys. The changelog topic deletes records older than the window:
    expired sightings no longer make anything a duplicate.
    """

    def seen_at(self, keys: Sequence[str]) -> dict[str, int]:
        data = self.data
        found: dict[str, int] = {}
        for key in keys:
            seen = data.get(key)
            if seen is not None:
                found[key] = seen
        return found

    def remember(self, keys_by_partition: Mapping[int, Sequence[str]], at_ms: int) -> None:
        data = self.data
        for partition, keys in keys_by_partition.items():
            if not keys:
                continue
            for key in keys:
                data[key] = at_ms
            self.send_changelog(partition, sightings_key(partition), sightings_value(keys, at_ms))

    def apply_changelog_batch(self, batch: Iterable[EventT]) -> None:
        """Recovery (and standby replicas): every key of every batch record, latest sighting wins."""
        apply_sightings(self.data, (event.value for event in batch))

    def forget_before(self, before_ms: int) -> int:
        """Drop expired sightings from this worker's memory (the changelog's retention drops them there)."""
        store = self.data
        expired = [key for key, seen_at in list(store.items()) if seen_at < before_ms]
        for key in expired:
            del store[key]
        return len(expired)


class TableNameCache:
    """`NameCache` over a Faust table; values are `[found, display_name, upn, resolved_at_ms]`.

    Names are resolved for whole batches, outside any one event, where Faust cannot pick the changelog
    partition from the current event; an entry goes to the partition its id hashes to (a cache: a worker
    that does not hold an entry merely asks Graph again).
    """

    def __init__(self, table: TableT[str, list[Any]], partitions: int) -> None:
        self.table = table
        self.partitions = partitions

    def cached_names(self, ids: Sequence[str]) -> dict[str, CachedName]:
        found: dict[str, CachedName] = {}
        for object_id in ids:
            cached = cached_name_of(self.table.get(object_id))
            if cached is not None:
                found[object_id] = cached
        return found

    def remember_names(self, names: Mapping[str, CachedName]) -> None:
        for object_id, cached in names.items():
            value = name_value(cached)
            self.table.data[object_id] = value
            partition = name_partition(object_id, self.partitions)
            self.table.send_changelog(partition, object_id, value)


class RecordBatchPublisher:
    """Sends a batch's messages through the app's producer as whole Kafka record batches.

    Faust's `Topic.send` costs a future, a task and several callbacks per message, a third of the
    worker's time at thousands of events per second; `RecordBatchSender` (shared with every AOC
    producer) costs one future per partition's batch and partitions as every other AOC producer does.
    The producer stays Faust's own: Faust flushes it before it commits offsets.
    """

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._sender: RecordBatchSender | None = None

    async def send(self, topic: TopicT, messages: Sequence[Message]) -> list[asyncio.Future[Any]]:
        """Queue `messages` on `topic`; the futures resolve when the broker acknowledged them."""
        if not messages:
            return []
        if not isinstance(topic, faust.Topic):  # a channel standing in for a topic (test mode)
            return [await topic.send(key=m.key, value=m.value) for m in messages]
        producer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]
        if self._sender is None or self._sender.producer is not producer:
            self._sender = RecordBatchSender(producer, max_message_bytes=MAX_MESSAGE_BYTES)
        return await self._sender.send(topic.get_topic_name(), messages)


def record_of(event: EventT) -> Record:
    """A Faust event as the step reads records."""
    message = event.message
    return Record(
        message.topic,
        message.partition,
        message.offset,
        message.key,
        message.value,
        int((message.timestamp or 0) * 1000),
    )


class NormalizerApp:
    """Topics, tables and agents of the normalizer on one Faust app; `app` is what a worker runs."""

    def __init__(
        self,
        settings: Settings,
        *,
        mappings: LiveMappings,
        lookup: DirectoryLookup | None = None,
        options: FaustOptions | None = None,
    ) -> None:
        options = options or FaustOptions()
        self.options = options
        self.app = app = faust_app(settings, options.overrides)
        window_ms = settings.dedupe_window_days * 86_400_000

        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        # Sinks are attributes so that a test can swap them for in-memory channels.
        self.events: TopicT = app.topic(topics.EVENTS, **raw)
        self.dlq: TopicT = app.topic(topics.DLQ, **raw)
        self.publisher = RecordBatchPublisher(app)

        # Co-partitioned with the raw topics: partition p of each raw topic and of this changelog go to
        # one worker. Records older than the window are deleted by the broker.
        self.seen: SightingsTable = app.tables.add(
            SightingsTable(
                app,
                name=DEDUPE_TABLE,
                default=None,
                beacon=app.tables.beacon,
                extra_topic_configs=dedupe_changelog_config(window_ms),
            )
        )
        # Names: a cache with a TTL, kept across restarts by its changelog (see TableNameCache).
        self.names: TableT[str, list[Any]] = app.Table(NAMES_TABLE, default=None)
        self.step = NormalizerStep.from_settings(
            settings,
            seen=self.seen,
            names=TableNameCache(self.names, self.names.partitions or app.conf.topic_partitions),
            lookup=lookup,
            mappings=mappings,
        )

        self.normalize_agents = {
            topic: app.agent(
                app.topic(topic, **raw), name=f"normalize-{source_of_raw_topic(topic)}"
            )(self.normalize_raw)
            for topic in topics.RAW_TOPICS
        }
        app.timer(PURGE_EVERY_S, name="forget-expired-sightings")(self.forget_expired_sightings)

    @property
    def mappings(self) -> LiveMappings:
        return self.step.mappings

    async def normalize_raw(self, stream: StreamT[bytes]) -> None:
        """Raw records → events and dead letters, a batch at a time (acknowledged, then remembered)."""
        async for batch in stream.take_events(
            self.options.batch_size, within=self.options.batch_within_s
        ):
            await self.normalize_batch([record_of(event) for event in batch])

    async def normalize_batch(self, records: Sequence[Record]) -> None:
        processed = await self.step.process(records)
        # Sent without awaiting each; the batch is acknowledged as a whole before anything is remembered.
        deliveries = await self.publisher.send(self.events, processed.event_messages())
        deliveries += await self.publisher.send(self.dlq, processed.dead_letter_messages())
        if deliveries:
            await asyncio.gather(*deliveries)
        self.seen.remember(processed.remember, processed.at_ms)
        if processed.events:
            MESSAGES_PUBLISHED.labels(SERVICE, topics.EVENTS).inc(len(processed.events))
        if records:
            MESSAGES_CONSUMED.labels(SERVICE, records[0].topic).inc(len(records))

    async def forget_expired_sightings(self) -> None:
        """Drop expired sightings from this worker's memory; the changelog's retention drops them there."""
        self.forget_expired(now_ms(utc_now()))

    def forget_expired(self, at_ms: int) -> int:
        forgotten = self.seen.forget_before(self.step.dedupe.expired_before_ms(at_ms))
        if forgotten:
            log.info("dedupe window: forgot expired keys", count=forgotten)
        return forgotten


def build_app(
    settings: Settings,
    *,
    lookup: DirectoryLookup | None = None,
    options: FaustOptions | None = None,
) -> NormalizerApp:
    """The normalizer app for `aoc run normalizer` on Kafka (mappings read now: a bad file stops start)."""
    return NormalizerApp(
        settings,
        mappings=LiveMappings.load(settings.mappings_path),
        lookup=lookup,
        options=options,
    )
