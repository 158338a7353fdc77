"""The Kafka message log: the production engine, through aiokafka.

Services scale out by running more members of the same consumer group; the broker splits partitions.
This module must never leave a network call without a timeout, nor let an aiokafka exception escape:
callers see MessageLogError with the broker address and what was being attempted.

Topics are created by this client (`ensure_topics`, and before the first publish or subscribe to a topic),
so they get `default_partitions` rather than whatever the broker's auto-create default happens to be.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    RebalanceInProgressError,
    TopicAlreadyExistsError,
)
from aiokafka.protocol.group import LeaveGroupRequest

from aoc_common.logging import get_logger
from aoc_common.message_log.base import (
    Message,
    MessageLog,
    MessageLogError,
    Record,
    Subscription,
    timestamp_ms,
    validate_reset_target,
)
from aoc_common.message_log.record_batches import (
    RECORD_BATCH_BYTES,
    RecordBatchSender,
    acknowledged,
)
from aoc_common.settings import Settings

T = TypeVar("T")

log = get_logger(__name__)

# Audit records reach ~1 MB (large directory changes); leave room for the batch and key overhead.
# Brokers must allow it too (message.max.bytes / max.message.bytes).
MAX_MESSAGE_BYTES = 2 * 1024 * 1024

# A commit that fails for these reasons lost a race with a rebalance: the partition's new owner re-reads
# the records from the last commit, which is what at-least-once promises. Not an error for the caller.
_LOST_TO_REBALANCE = (CommitFailedError, IllegalStateError, RebalanceInProgressError)
_NETWORK_ERRORS = (KafkaError, TimeoutError, OSError)


class KafkaMessageLog(MessageLog):
    """One producer, one admin client and one group-less consumer (for offset look-ups) per process."""

    engine = "kafka"

    @classmethod
    def from_settings(cls, settings: Settings, *, client_id: str = "aoc") -> KafkaMessageLog:
        """The broker and client settings every AOC service reads (not started yet)."""
        assert settings.kafka_bootstrap_servers is not None, "no KAFKA_BOOTSTRAP_SERVERS"
        return cls(
            settings.kafka_bootstrap_servers,
            client_id=client_id,
            enable_idempotence=settings.kafka_enable_idempotence,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
            request_timeout_ms=settings.kafka_request_timeout_ms,
            default_partitions=settings.kafka_topic_partitions,
            replication_factor=settings.kafka_replication_factor,
        )

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "aoc",
        enable_idempotence: bool = True,
        session_timeout_ms: int = 10000,
        heartbeat_interval_ms: int = 3000,
        rebalance_timeout_ms: int | None = None,
        request_timeout_ms: int = 30000,
        default_partitions: int = 6,
        replication_factor: int = 1,
    ) -> None:
        if default_partitions < 1:
            raise ValueError("default_partitions must be >= 1")
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.enable_idempotence = enable_idempotence
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.request_timeout_ms = request_timeout_ms
        self.default_partitions = default_partitions
        self.replication_factor = replication_factor
        self._admin: AIOKafkaAdminClient | None = None
        self._producer: AIOKafkaProducer | None = None
        self._offsets_reader: AIOKafkaConsumer | None = None
        self._sender: RecordBatchSender | None = None
        self._known_topics: set[str] = set()

    @property
    def timeout_s(self) -> float:
        """The bound on any one network call."""
        return self.request_timeout_ms / 1000

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._producer is not None:
            return
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            request_timeout_ms=self.request_timeout_ms,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=self.enable_idempotence,
            max_request_size=MAX_MESSAGE_BYTES,
            max_batch_size=RECORD_BATCH_BYTES,
            request_timeout_ms=self.request_timeout_ms,
        )
        offsets_reader = self._consumer(group=None)
        try:
            await self._bounded("connect (admin)", admin.start())
            await self._bounded("connect (producer)", producer.start())
            await self._bounded("connect (consumer)", offsets_reader.start())
        except BaseException:
            await self._shut(admin, producer, offsets_reader)
            raise
        self._admin, self._producer, self._offsets_reader = admin, producer, offsets_reader
        self._sender = RecordBatchSender(producer, max_message_bytes=MAX_MESSAGE_BYTES)

    async def stop(self) -> None:
        clients = (self._producer, self._offsets_reader, self._admin)
        self._admin = self._producer = self._offsets_reader = None
        self._sender = None
        await self._shut(*clients)

    async def ping(self) -> None:
        await self._bounded("ping", self._admin_client().describe_cluster())

    # --- topics and publishing -----------------------------------------------------------------------

    async def ensure_topics(
        self,
        topics: Sequence[str],
        partitions: int | None = None,
        *,
        config: Mapping[str, str] | None = None,
    ) -> None:
        """Create missing topics; `config` (Kafka only) sets topic settings such as retention.ms."""
        count = self.default_partitions if partitions is None else partitions
        if count < 1:
            raise ValueError("partitions must be >= 1")
        missing = [topic for topic in dict.fromkeys(topics) if topic not in self._known_topics]
        if not missing:
            return
        settings = dict(config or {})
        response = await self._bounded(
            "create topics",
            self._admin_client().create_topics(
                [
                    NewTopic(topic, count, self.replication_factor, topic_configs=settings)
                    for topic in missing
                ],
                timeout_ms=self.request_timeout_ms,
            ),
        )
        for outcome in response.topic_errors:
            topic, code = outcome[0], outcome[1]
            if code not in (0, TopicAlreadyExistsError.errno):
                detail = outcome[2] if len(outcome) > 2 else ""
                raise MessageLogError(
                    f"Kafka at {self.bootstrap_servers} refused to create topic {topic!r}: "
                    f"error {code} {detail}"
                )
        self._known_topics.update(missing)

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        """Sent as whole record batches per partition (see record_batches.py); acknowledged once."""
        if not messages:
            return
        sender = self._require(self._sender)
        await self.ensure_topics([topic])

        async def send_all() -> None:
            await acknowledged(await sender.send(topic, messages))

        # aiokafka bounds each delivery by request_timeout_ms; twice that also covers a full buffer.
        await self._bounded(f"publish to {topic!r}", send_all(), timeout_s=2 * self.timeout_s)

    async def send(self, topic: str, messages: Sequence[Message]) -> list[asyncio.Future[Any]]:
        """Queue `messages` without waiting for the broker: for a shell that overlaps the wait for
        one batch's acknowledgements with the next batch's work (`await acknowledged(futures)`)."""
        sender = self._require(self._sender)
        await self.ensure_topics([topic])
        return await self._bounded(f"send to {topic!r}", sender.send(topic, messages))

    async def send_to_partition(
        self, topic: str, partition: int, messages: Sequence[Message]
    ) -> list[asyncio.Future[Any]]:
        """`send` to a partition the caller chose (a table's changelog partition)."""
        sender = self._require(self._sender)
        return await self._bounded(
            f"send to {topic!r}", sender.send_to_partition(topic, partition, messages)
        )

    async def partitions(self, topic: str) -> list[int]:
        """Partitions of an existing topic; [] when it does not exist."""
        return await self._partitions(topic)

    def subscribe(self, topics: Sequence[str], group: str) -> Subscription:
        if not topics:
            raise ValueError("subscribe to at least one topic")
        return KafkaSubscription(self, tuple(topics), group)

    # --- offsets and replay --------------------------------------------------------------------------

    async def committed(self, group: str, topic: str) -> dict[int, int | None]:
        partitions = await self._partitions(topic)
        committed: dict[int, int | None] = dict.fromkeys(partitions)
        if not partitions:
            return committed
        offsets = await self._bounded(
            f"read committed offsets of {group!r}",
            self._admin_client().list_consumer_group_offsets(
                group, partitions=[TopicPartition(topic, p) for p in partitions]
            ),
        )
        for tp, meta in offsets.items():
            if tp.topic == topic and tp.partition in committed and meta.offset >= 0:
                committed[tp.partition] = meta.offset
        return committed

    async def end_offsets(self, topic: str) -> dict[int, int]:
        tps = [TopicPartition(topic, p) for p in await self._partitions(topic)]
        if not tps:
            return {}
        reader = self._require(self._offsets_reader)
        ends = await self._bounded(f"read end offsets of {topic!r}", reader.end_offsets(tps))
        return {tp.partition: offset for tp, offset in ends.items()}

    async def start_offsets(self, topic: str) -> dict[int, int]:
        tps = [TopicPartition(topic, p) for p in await self._partitions(topic)]
        if not tps:
            return {}
        reader = self._require(self._offsets_reader)
        starts = await self._bounded(
            f"read start offsets of {topic!r}", reader.beginning_offsets(tps)
        )
        return {tp.partition: offset for tp, offset in starts.items()}

    async def reset_group(
        self,
        group: str,
        topic: str,
        *,
        to_offset: int | None = None,
        to_timestamp: datetime | None = None,
    ) -> dict[int, int]:
        """See MessageLog.reset_group. Refuses while the broker lists members in `group`.

        The offsets are committed by a member-less client, which Kafka accepts only while the group is
        empty: a member that joins between the check and the commit makes the reset fail, not half-apply.
        """
        validate_reset_target(to_offset, to_timestamp)
        await self._refuse_active_group(group)
        tps = [TopicPartition(topic, p) for p in await self._partitions(topic)]
        if not tps:
            return {}
        reader = self._require(self._offsets_reader)
        starts = await self._bounded("read start offsets", reader.beginning_offsets(tps))
        ends = await self._bounded("read end offsets", reader.end_offsets(tps))
        if to_offset is not None:
            wanted = dict.fromkeys(tps, to_offset)
        else:
            assert to_timestamp is not None
            since_ms = timestamp_ms(to_timestamp)
            found = await self._bounded(
                "find offsets by time", reader.offsets_for_times(dict.fromkeys(tps, since_ms))
            )
            # Kafka never answers with an earlier timestamp than asked, but Tansu 0.6 answers
            # (offset 0, timestamp -1) where it should answer "none": treat both as "the end".
            wanted = {
                tp: hit.offset if hit is not None and hit.timestamp >= since_ms else ends[tp]
                for tp, hit in found.items()
            }
        targets = {tp: min(max(wanted[tp], starts[tp]), ends[tp]) for tp in tps}
        committer = self._consumer(group=group)
        try:
            await self._bounded("connect (reset)", committer.start())
            committer.assign(tps)
            await self._bounded(f"commit reset offsets for {group!r}", committer.commit(targets))
        finally:
            await self._shut(committer)
        return {tp.partition: offset for tp, offset in targets.items()}

    async def _refuse_active_group(self, group: str) -> None:
        responses = await self._bounded(
            f"describe group {group!r}", self._admin_client().describe_consumer_groups([group])
        )
        members = [
            member
            for response in responses
            for described in response.to_object()["groups"]
            for member in described["members"]
        ]
        if members:
            raise MessageLogError(
                f"consumer group {group!r} has {len(members)} active member(s); "
                "stop them before a reset"
            )

    # --- plumbing ------------------------------------------------------------------------------------

    async def _bounded(self, what: str, call: Awaitable[T], timeout_s: float | None = None) -> T:
        """Await `call` within a timeout; every failure becomes a MessageLogError naming the broker."""
        limit = self.timeout_s if timeout_s is None else timeout_s
        try:
            return await asyncio.wait_for(call, limit)
        except _NETWORK_ERRORS as exc:
            raise self._failure(what, exc, limit) from exc

    def _failure(
        self, what: str, exc: BaseException, limit_s: float | None = None
    ) -> MessageLogError:
        if isinstance(exc, TimeoutError):
            reason = f"no answer within {self.timeout_s if limit_s is None else limit_s:g} s"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        return MessageLogError(f"Kafka at {self.bootstrap_servers}: {what} failed ({reason})")

    def _consumer(self, group: str | None, topics: Sequence[str] = ()) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            *topics,
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            rebalance_timeout_ms=self.rebalance_timeout_ms,
            request_timeout_ms=self.request_timeout_ms,
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
        )

    async def _partitions(self, topic: str) -> list[int]:
        """Partitions of an existing topic; [] when it does not exist.

        Asks for every topic's metadata: asking for one by name makes brokers with auto-create on
        (Tansu, Kafka's default) create it, with their own partition count.
        """
        described = await self._bounded("describe topics", self._admin_client().describe_topics())
        for found in described:
            if found["topic"] == topic and found["error_code"] == 0:
                return sorted(p["partition"] for p in found["partitions"])
        return []

    def _admin_client(self) -> AIOKafkaAdminClient:
        return self._require(self._admin)

    def _require(self, client: T | None) -> T:
        if client is None:
            raise MessageLogError(f"Kafka message log for {self.bootstrap_servers} is not started")
        return client

    async def _shut(self, *clients: Any) -> None:
        """Close clients, best effort: shutting down must not hang on an unreachable broker."""
        for client in clients:
            if client is None:
                continue
            close = client.close if isinstance(client, AIOKafkaAdminClient) else client.stop
            with contextlib.suppress(*_NETWORK_ERRORS):
                await asyncio.wait_for(close(), self.timeout_s)


class KafkaSubscription(Subscription):
    """One AIOKafkaConsumer in group `group`; joins on `async with` or on the first fetch."""

    def __init__(self, message_log: KafkaMessageLog, topics: tuple[str, ...], group: str) -> None:
        self.topics = topics
        self.group = group
        self._log = message_log
        self._consumer: AIOKafkaConsumer | None = None
        self._closed = False

    async def __aenter__(self) -> KafkaSubscription:
        await self._started()
        return self

    async def _started(self) -> AIOKafkaConsumer:
        if self._closed:
            raise MessageLogError(f"this member of {self.group!r} has left the group")
        if self._consumer is None:
            await self._log.ensure_topics(self.topics)
            consumer = self._log._consumer(self.group, self.topics)
            try:
                await self._log._bounded(f"join group {self.group!r}", consumer.start())
            except BaseException:
                await self._log._shut(consumer)
                raise
            self._consumer = consumer
        return self._consumer

    async def fetch(self, max_records: int = 500, timeout_s: float = 1.0) -> list[Record]:
        consumer = await self._started()
        batches = await self._log._bounded(
            f"fetch for {self.group!r}",
            consumer.getmany(timeout_ms=max(int(timeout_s * 1000), 0), max_records=max_records),
            timeout_s=timeout_s + self._log.timeout_s,
        )
        return [
            Record(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                value=message.value if message.value is not None else b"",
                timestamp_ms=message.timestamp,
            )
            for tp in sorted(batches)
            for message in batches[tp]
        ]

    async def commit(self, records: Sequence[Record]) -> None:
        """Commits only partitions this member still owns: the new owner re-reads the others."""
        consumer = self._consumer
        if consumer is None or not records:
            return
        owned = consumer.assignment()
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        skipped = sorted(tp for tp in offsets if tp not in owned)
        if skipped:
            log.warning("commit_skipped_unowned_partitions", group=self.group, partitions=skipped)
        mine = {tp: offset for tp, offset in offsets.items() if tp in owned}
        if not mine:
            return
        try:
            await asyncio.wait_for(consumer.commit(mine), self._log.timeout_s)
        except _LOST_TO_REBALANCE as exc:
            log.warning("commit_lost_to_rebalance", group=self.group, error=str(exc))
        except _NETWORK_ERRORS as exc:
            raise self._log._failure(f"commit for {self.group!r}", exc) from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await leave_group_at_generation_zero(consumer, self._log.timeout_s)
            await self._log._shut(consumer)


async def leave_group_at_generation_zero(consumer: AIOKafkaConsumer, timeout_s: float) -> None:
    """Tansu compatibility: send LeaveGroup ourselves when the member joined at generation 0.

    aiokafka sends LeaveGroup on stop only when its generation is > 0, since Kafka's first generation
    is 1. Tansu 0.6 numbers it 0 and never expires a dead member, so the departed member would keep
    the group "active" (refusing `aoc replay`) and the next member's join would wait out the rebalance
    timeout. A member on Apache Kafka never has generation 0, so this does nothing there. Best effort,
    like aiokafka's own leave. Also used by the Faust normalizer's consumer (faust_app.py).
    """
    coordinator = getattr(consumer, "_coordinator", None)
    member_id = getattr(coordinator, "member_id", "")
    group = getattr(coordinator, "group_id", None)
    if coordinator is None or getattr(coordinator, "generation", None) != 0 or not member_id:
        return
    with contextlib.suppress(*_NETWORK_ERRORS, AttributeError):
        await asyncio.wait_for(
            coordinator._send_req(LeaveGroupRequest(group, member_id)), timeout_s
        )
