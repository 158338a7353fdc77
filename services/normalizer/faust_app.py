"""The normalizer on Kafka: a Faust app, the second shell around the same core as the embedded runtime.

Two stages, so that the dedupe table is co-partitioned with what it guards:

    aoc.raw.<source> ──map_<source> (batches: core + enrichment)──▶ aoc-normalizer-mapped (key dedupe_key)
                     └──────────────────────────────────────────▶ aoc.dlq (dead letters)
    aoc-normalizer-mapped ──dedupe (one event at a time)──▶ aoc.events (key dedupe_key)

`map_<source>` (one agent per raw topic, `NORMALIZER_CONCURRENCY` each) maps a batch with the core and names
directory objects through Graph, caching names in the `directory-names` table. `dedupe` reads events keyed
by dedupe_key, so every sighting of one key arrives on one partition, and the `dedupe-seen` table (whose
changelog partition is that same partition) survives restarts and rebalances. A key is remembered only
after Kafka acknowledged the published event: a crash in between republishes (at-least-once, the store's
upsert absorbs it), it never loses an event.

Faust's guarantee is at-least-once (offsets are committed after the producer is flushed); the producer is
not idempotent, which also suits brokers without InitProducerId. This module must never let a bad record
stop an agent: the core turns it into a dead letter.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import faust
from faust.types import EventT, StreamT, TableT, TopicT

from aoc_common import topics
from aoc_common.codec import encode, encode_key
from aoc_common.events import utc_now
from aoc_common.logging import get_logger
from aoc_common.message_log.base import Record
from aoc_common.message_log.kafka import MAX_MESSAGE_BYTES
from aoc_common.metrics import (
    DEAD_LETTERS,
    DUPLICATES_DROPPED,
    ENRICHMENT_PENDING,
    MESSAGES_CONSUMED,
    MESSAGES_PUBLISHED,
)
from aoc_common.settings import Settings
from aoc_common.topics import source_of_raw_topic
from aoc_normalizer.core import STAGE, DirectoryName, Limits, normalize_batch
from aoc_normalizer.dedupe import DedupeWindow, now_ms
from aoc_normalizer.enrichment import CachedName, DirectoryLookup, Enricher
from aoc_normalizer.mappings import LiveMappings

SERVICE = "normalizer"
MAPPED_TOPIC = f"{topics.NORMALIZER_GROUP}-mapped"
PURGE_EVERY_S = 3600.0
log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class FaustOptions:
    """What the Faust app needs beyond Settings; tests shorten the timings for Tansu."""

    batch_size: int = 500
    batch_within_s: float = 1.0
    overrides: Mapping[str, Any] | None = None  # extra faust.App settings


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
        "processing_guarantee": "at_least_once",
    }
    config.update(overrides or {})
    return faust.App(topics.NORMALIZER_GROUP, **config)


class TableNameCache:
    """`NameCache` over a Faust table; values are `[found, display_name, upn, resolved_at_ms]`.

    The map agents resolve names for whole batches, outside any one event, where Faust cannot pick the
    changelog partition from the current event; an entry goes to the partition its id hashes to (a
    cache: a worker that does not hold an entry merely asks Graph again).
    """

    def __init__(self, table: TableT[str, list[Any]], partitions: int) -> None:
        self.table = table
        self.partitions = partitions

    def cached_names(self, ids: Sequence[str]) -> dict[str, CachedName]:
        found: dict[str, CachedName] = {}
        for object_id in ids:
            value = self.table.get(object_id)
            if isinstance(value, list) and len(value) == 4:
                found[object_id] = CachedName(DirectoryName(*value[:3]), int(value[3]))
        return found

    def remember_names(self, names: Mapping[str, CachedName]) -> None:
        for object_id, cached in names.items():
            name = cached.name
            value = [name.found, name.display_name, name.user_principal_name, cached.resolved_at_ms]
            self.table.data[object_id] = value
            partition = zlib.crc32(object_id.encode("utf-8")) % self.partitions
            self.table.send_changelog(partition, object_id, value)


def record_of(event: EventT) -> Record:
    """A Faust event as the core reads records."""
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
        self.mappings = mappings
        self.limits = Limits(
            max_record_bytes=settings.max_record_bytes,
            max_future_skew=timedelta(minutes=settings.max_future_skew_minutes),
        )
        self.dedupe = DedupeWindow(timedelta(days=settings.dedupe_window_days))
        self.app = app = faust_app(settings, options.overrides)

        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        # Sinks are attributes so that a test can swap them for in-memory channels.
        self.events: TopicT = app.topic(topics.EVENTS, **raw)
        self.dlq: TopicT = app.topic(topics.DLQ, **raw)
        self.mapped: TopicT = app.topic(MAPPED_TOPIC, internal=True, **raw)

        # Dedupe sightings: partitioned like `mapped`; the changelog forgets what the window expired.
        self.seen: TableT[str, int] = app.Table(
            "dedupe-seen",
            default=None,
            extra_topic_configs={
                "cleanup.policy": "compact,delete",
                "retention.ms": str(self.dedupe.window_ms),
            },
        )
        # Names: a cache with a TTL, kept across restarts by its changelog (see TableNameCache).
        self.names: TableT[str, list[Any]] = app.Table("directory-names", default=None)
        self.enricher = Enricher(
            lookup,
            TableNameCache(self.names, self.names.partitions or app.conf.topic_partitions),
            timedelta(hours=settings.enrichment_cache_ttl_hours),
        )

        self.map_agents = {
            topic: app.agent(
                app.topic(topic, **raw),
                name=f"map-{source_of_raw_topic(topic)}",
                concurrency=settings.normalizer_concurrency,
            )(self.map_raw)
            for topic in topics.RAW_TOPICS
        }
        self.dedupe_agent = app.agent(self.mapped, name="dedupe")(self.publish_first_sightings)
        app.timer(PURGE_EVERY_S, name="forget-expired-sightings")(self.forget_expired_sightings)

    async def map_raw(self, stream: StreamT[bytes]) -> None:
        """Raw records → dead letters, and named events on the mapped topic keyed by dedupe_key."""
        async for batch in stream.take_events(
            self.options.batch_size, within=self.options.batch_within_s
        ):
            await self.map_batch([record_of(event) for event in batch])

    async def map_batch(self, records: Sequence[Record]) -> None:
        mappings = self.mappings.current()
        now = utc_now()
        events, dead = normalize_batch(records, mappings, now=now, limits=self.limits)
        for record, letter in dead:
            log.info(
                "dead-lettered", reason=letter.reason, topic=record.topic, offset=record.offset
            )
            await self.dlq.send(key=record.key, value=encode(letter))
        if dead:
            DEAD_LETTERS.labels(SERVICE, STAGE).inc(len(dead))
        events = await self.enricher.enrich(events, mappings, now)
        for event in events:
            await self.mapped.send(key=encode_key(event.dedupe_key), value=encode(event))
        pending = sum(1 for e in events if e.enrichment == "pending")
        if pending:
            ENRICHMENT_PENDING.labels(SERVICE).inc(pending)
        for record in records:
            MESSAGES_CONSUMED.labels(SERVICE, record.topic).inc()

    async def publish_first_sightings(self, stream: StreamT[bytes]) -> None:
        """Mapped events → `aoc.events`, except keys seen inside the dedupe window."""
        async for event in stream.events():
            message = event.message
            key = (message.key or b"").decode("utf-8", "replace")
            at_ms = now_ms(utc_now())
            if self.dedupe.seen_recently(self.seen.get(key), at_ms):
                DUPLICATES_DROPPED.labels(SERVICE).inc()
                continue
            sent = await self.events.send(key=message.key, value=message.value)
            await sent  # acknowledged before remembered: never a key remembered but not published
            self.seen[key] = at_ms
            MESSAGES_PUBLISHED.labels(SERVICE, topics.EVENTS).inc()

    async def forget_expired_sightings(self) -> None:
        """Drop expired sightings from this worker's memory; the changelog's retention drops them there."""
        self.forget_expired(now_ms(utc_now()))

    def forget_expired(self, at_ms: int) -> int:
        expired_before = self.dedupe.expired_before_ms(at_ms)
        store = self.seen.data
        expired = [k for k, seen_at in list(store.items()) if seen_at < expired_before]
        for key in expired:
            del store[key]
        if expired:
            log.info("dedupe window: forgot expired keys", count=len(expired))
        return len(expired)


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
