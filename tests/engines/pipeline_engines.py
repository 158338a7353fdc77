"""A started message log and event store of one kind, for tests that run pipeline pieces on both the
embedded engines and Kafka + MongoDB over the wire."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aoc_common import topics
from aoc_common.event_store.base import EventStore
from aoc_common.event_store.mongo import MongoEventStore
from aoc_common.event_store.sqlite import SqliteEventStore
from aoc_common.message_log.base import MessageLog
from aoc_common.message_log.embedded import EmbeddedMessageLog
from aoc_common.message_log.kafka import KafkaMessageLog
from tests.engines.kafka_server import kafka_test_options

ENGINE_KINDS = ["embedded", "kafka+mongo"]


@contextlib.asynccontextmanager
async def started_engines(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    *,
    database_prefix: str,
    kafka_fixture: str = "kafka_bootstrap",
) -> AsyncIterator[tuple[MessageLog, EventStore]]:
    """`request.param` picks the kind; Kafka comes from `kafka_fixture` (the session broker, or
    `private_kafka_bootstrap` for a test that counts whole topics), MongoDB gets a fresh database."""
    if request.param == "embedded":
        message_log: MessageLog = EmbeddedMessageLog(tmp_path / "log.sqlite3")
        store: EventStore = SqliteEventStore(tmp_path / "events.sqlite3", retention_days=3650)
    else:
        bootstrap = request.getfixturevalue(kafka_fixture)
        mongo_uri = request.getfixturevalue("mongo_uri")
        message_log = KafkaMessageLog(bootstrap, default_partitions=3, **kafka_test_options())
        database = f"{database_prefix}_{uuid.uuid4().hex[:12]}"
        store = MongoEventStore(mongo_uri, database, retention_days=3650)
    await message_log.start()
    await store.start()
    try:
        await message_log.ensure_topics(topics.ALL_TOPICS)
        yield message_log, store
    finally:
        await store.stop()
        await message_log.stop()
