"""The `engines` fixture: a started message log and event store holding every AOC topic, for any test
that runs services or reads and writes the engines. It yields the `Engines` the services' builds take.

By default the embedded engines, in the test's tmp_path. A test (or a module, through `pytestmark`)
marked `every_engine_kind` runs once per kind: embedded, and Kafka (Tansu, or AOC_TEST_KAFKA) + MongoDB
(SecantusDB, or AOC_TEST_MONGO_URI) over the wire, with a fresh database. On Kafka the broker is the
session's, shared with other tests: a test that counts whole topics from offset 0 is also marked
`private_broker` and gets a broker of its module's own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aoc_common import topics
from aoc_common.engines import Engines
from aoc_common.event_store.base import EventStore
from aoc_common.event_store.mongo import MongoEventStore
from aoc_common.event_store.sqlite import SqliteEventStore
from aoc_common.message_log.base import MessageLog
from aoc_common.message_log.embedded import EmbeddedMessageLog
from aoc_common.message_log.kafka import KafkaMessageLog
from tests.engines.kafka_server import kafka_test_options

ENGINE_KINDS = ("embedded", "kafka+mongo")
RETENTION_DAYS = 3650  # the fixtures are from 2026: never purged while a test runs


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "every_engine_kind: run the test on the embedded engines and on Kafka + MongoDB"
    )
    config.addinivalue_line(
        "markers", "private_broker: on Kafka, use a broker of the module's own, not the session's"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engines" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "every_engine_kind"
    ):
        metafunc.parametrize("engines", ENGINE_KINDS, indirect=True)


@pytest.fixture
async def engines(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engines]:
    """Started engines of the kind the test asks for (embedded unless marked), every topic created."""
    kind = getattr(request, "param", "embedded")
    message_log: MessageLog
    store: EventStore
    if kind == "embedded":
        message_log = EmbeddedMessageLog(tmp_path / "log.sqlite3")
        store = SqliteEventStore(tmp_path / "events.sqlite3", retention_days=RETENTION_DAYS)
    else:
        private = request.node.get_closest_marker("private_broker") is not None
        bootstrap = request.getfixturevalue(
            "private_kafka_bootstrap" if private else "kafka_bootstrap"
        )
        message_log = KafkaMessageLog(bootstrap, default_partitions=3, **kafka_test_options())
        database = f"test_{uuid.uuid4().hex[:12]}"
        store = MongoEventStore(
            request.getfixturevalue("mongo_uri"), database, retention_days=RETENTION_DAYS
        )
    await message_log.start()
    try:
        await store.start()
        try:
            await message_log.ensure_topics(topics.ALL_TOPICS)
            yield Engines(message_log, store)
        finally:
            await store.stop()
    finally:
        await message_log.stop()
