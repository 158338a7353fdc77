"""Fixtures for the SIEM forwarder: the fixture events, and the engine and group it reads as."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aoc_common import topics
from aoc_common.engines import Engines
from aoc_common.events import CanonicalEvent
from tests.utils.expected import ADMIN_FIXTURE_EVENTS
from tests.utils.records import fixture_events as mapped_fixture_events
from tests.utils.siem import Engine, with_ids_of_their_own


@pytest.fixture(scope="session")
def fixture_events(fixtures_dir: Path) -> list[CanonicalEvent]:
    """Every fixture record through the normalizer core, one event per dedupe_key."""
    events: dict[str, CanonicalEvent] = {}
    for event in mapped_fixture_events(fixtures_dir):
        events.setdefault(event.dedupe_key, event)
    assert len(events) == ADMIN_FIXTURE_EVENTS
    return list(events.values())


@pytest.fixture
def events(fixture_events: list[CanonicalEvent]) -> list[CanonicalEvent]:
    """The fixture events under ids of this test's own (other tests publish them on Kafka too)."""
    return with_ids_of_their_own(fixture_events)


@pytest.fixture
async def engine(engines: Engines) -> Engine:
    """The forwarder's engine: the embedded log as aoc-siem-forwarder, or (for a test marked
    every_engine_kind) the session's Kafka broker as a group of the test's own, starting at the end
    of what is already there."""
    if engines.message_log.engine == "embedded":
        return Engine("embedded", engines.message_log, topics.SIEM_FORWARDER_GROUP)
    group = f"siem-test-{uuid.uuid4().hex[:10]}"
    await engines.message_log.reset_group(group, topics.EVENTS, to_timestamp=datetime.now(UTC))
    return Engine("kafka", engines.message_log, group)
