"""Fixtures for the SIEM forwarder: fixture events on `aoc.events`, engines, a running forwarder."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from aoc_common import topics
from aoc_common.codec import encode, encode_key
from aoc_common.events import CanonicalEvent, event_id_for
from aoc_common.message_log.base import Message, MessageLog
from aoc_common.message_log.embedded import EmbeddedMessageLog
from aoc_common.message_log.kafka import KafkaMessageLog
from aoc_siem_forwarder.runtime import SiemForwarder
from tests.builders import fixture_events as mapped_fixture_events
from tests.builders import wait_for
from tests.engines.kafka_server import kafka_test_options, using_tansu

FIXTURE_EVENTS = (
    147  # 60 unique directory audits + 30 Intune events + 57 Management Activity records
)

T = TypeVar("T")


@pytest.fixture(scope="session")
def fixture_events(fixtures_dir: Path) -> list[CanonicalEvent]:
    """Every fixture record through the normalizer core, one event per dedupe_key (147)."""
    events: dict[str, CanonicalEvent] = {}
    for event in mapped_fixture_events(fixtures_dir):
        events.setdefault(event.dedupe_key, event)
    assert len(events) == FIXTURE_EVENTS
    return list(events.values())


@pytest.fixture
def events(fixture_events: list[CanonicalEvent]) -> list[CanonicalEvent]:
    """The fixture events under ids of this test's own.

    The Kafka broker is shared by the whole session and other tests publish the same fixture events:
    with ids of its own a test can tell its events from theirs.
    """
    run = uuid.uuid4().hex[:8]
    copies = []
    for event in fixture_events:
        dedupe_key = f"{event.dedupe_key}#{run}"
        copies.append(
            event.model_copy(update={"dedupe_key": dedupe_key, "id": event_id_for(dedupe_key)})
        )
    return copies


def ours(received: list[str], events: list[CanonicalEvent]) -> list[str]:
    """The ids in `received` that belong to `events` (a shared broker may hold others)."""
    wanted = {e.id for e in events}
    return [event_id for event_id in received if event_id in wanted]


async def publish_events(message_log: MessageLog, events: list[CanonicalEvent]) -> None:
    await message_log.publish(
        topics.EVENTS, [Message(encode_key(e.dedupe_key), encode(e)) for e in events]
    )


@dataclass
class Engine:
    """A started message log and the consumer group the forwarder under test uses on it."""

    name: str
    message_log: MessageLog
    group: str


async def _kafka_engine(bootstrap: str, group: str) -> Engine:
    """The Kafka broker is shared by the session: start `group` at the end of what is already there."""
    message_log = KafkaMessageLog(bootstrap, default_partitions=3, **kafka_test_options())
    await message_log.start()
    await message_log.ensure_topics(topics.ALL_TOPICS)
    await message_log.reset_group(group, topics.EVENTS, to_timestamp=datetime.now(UTC))
    return Engine("kafka", message_log, group)


@pytest.fixture(params=["embedded", "kafka"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    if request.param == "embedded":
        message_log: MessageLog = EmbeddedMessageLog(tmp_path / "log.sqlite3")
        await message_log.start()
        await message_log.ensure_topics(topics.ALL_TOPICS)
        found = Engine("embedded", message_log, topics.SIEM_FORWARDER_GROUP)
    else:
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        found = await _kafka_engine(bootstrap, f"siem-test-{uuid.uuid4().hex[:10]}")
    yield found
    await found.message_log.stop()


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[Engine]:
    message_log = EmbeddedMessageLog(tmp_path / "log.sqlite3")
    await message_log.start()
    await message_log.ensure_topics(topics.ALL_TOPICS)
    yield Engine("embedded", message_log, topics.SIEM_FORWARDER_GROUP)
    await message_log.stop()


async def caught_up(engine: Engine) -> int:
    """Wait until the forwarder's group has committed everything on `aoc.events`; returns the lag.

    Tansu 0.6 under-reports a partition's end offset (see the xfail in the message log contract suite),
    so there a lag at or below zero is what "everything committed" looks like.
    """
    tansu = engine.name == "kafka" and using_tansu()
    lag = await wait_for(
        lambda: engine.message_log.lag(engine.group, topics.EVENTS),
        lambda n: n <= 0 if tansu else n == 0,
    )
    return 0 if tansu and lag <= 0 else lag


@contextlib.asynccontextmanager
async def running(forwarder: SiemForwarder) -> AsyncIterator[SiemForwarder]:
    """The forwarder consuming in the background; stopped cleanly (finish, commit, leave) at the end."""
    stop = asyncio.Event()
    task = asyncio.create_task(forwarder.run(stop))
    try:
        yield forwarder
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def siem_dead_letters(
    message_log: MessageLog, event_ids: set[str], *, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """The forwarder's dead letters on `aoc.dlq` for `event_ids` (the topic holds others' too)."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    async with message_log.subscribe([topics.DLQ], f"test-dlq-{uuid.uuid4().hex}") as reader:
        while len(found) < len(event_ids) and time.monotonic() < deadline:
            for record in await reader.fetch(500, 0.5):
                letter = orjson.loads(record.value)
                if letter["stage"] != "siem_forwarder":
                    continue
                original = orjson.loads(base64.b64decode(letter["original_base64"]))
                if original.get("id") in event_ids:
                    found.append(letter)
    return found
