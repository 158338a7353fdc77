"""The fixtures through the whole pipeline: replay collector → raw topics → normalizer → aoc.events →
store sink → event store, on the embedded engines and on the Kafka / MongoDB wire-protocol engines."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import orjson
import pytest

from aoc_collector.service import publish_replay
from aoc_common import topics
from aoc_common.engines import Engines
from aoc_common.event_store.sqlite import SqliteEventStore
from aoc_common.query import EventQuery
from aoc_common.settings import Settings
from aoc_normalizer.service import build as build_normalizer
from aoc_store.service import build as build_store
from tests.utils.expected import COLLECTED_RECORDS, MALFORMED_INPUTS, STORED_FIXTURE_EVENTS
from tests.utils.topic_io import read_topic
from tests.utils.waiting import wait_for


@pytest.mark.every_engine_kind
@pytest.mark.private_broker  # counts everything on aoc.events and aoc.dlq from offset 0
async def test_fixtures_flow_through_the_pipeline_with_dedupe_and_dead_letters(
    engines: Engines, fixtures_dir: Path, tmp_path: Path
) -> None:
    message_log, store = engines.message_log, engines.store
    settings = Settings(data_dir=tmp_path)
    stop = asyncio.Event()
    workers = [
        asyncio.create_task(build_normalizer(settings, engines).run(stop)),
        asyncio.create_task(build_store(settings, engines).run(stop)),
    ]
    try:
        published = await publish_replay(
            message_log, settings, fixtures_dir, include_malformed=True
        )
        assert (
            published == sum(COLLECTED_RECORDS.values()) + MALFORMED_INPUTS - 1
        )  # huge_field stops at the collector

        stored = await wait_for(store.count_events, lambda n: n >= STORED_FIXTURE_EVENTS)
        assert stored == STORED_FIXTURE_EVENTS

        dead = await read_topic(message_log, topics.DLQ, MALFORMED_INPUTS)
        reasons = sorted(orjson.loads(r.value)["reason"] for r in dead)
        assert len(reasons) == MALFORMED_INPUTS, reasons
        stages = sorted(orjson.loads(r.value)["stage"] for r in dead)
        assert stages == ["collector"] + ["normalizer"] * (MALFORMED_INPUTS - 1)
        for expected in (
            "invalid JSON",
            "activityDateTime: Field required",
            "activityDateTime: Input should be a valid datetime",
            "exceeds MAX_RECORD_BYTES",
            "contains a NUL character",
            "expected an object",
            "more than 60 minutes in the future",
        ):
            assert any(expected in reason for reason in reasons), (expected, reasons)

        # The two records page 2 repeats were collected twice but published (and stored) once.
        events = await read_topic(message_log, topics.EVENTS, STORED_FIXTURE_EVENTS)
        keys = [orjson.loads(r.value)["dedupe_key"] for r in events]
        assert len(keys) == len(set(keys)) == STORED_FIXTURE_EVENTS
        page = await store.query_events(EventQuery(search="Directory_A6511445_0023"))
        assert len(page.items) == 1

        # Entra sign-ins arrive mapped: actor with IP and location, result from the error code.
        signins = await store.query_events(EventQuery(source="signins", page_size=100))
        assert len(signins.items) == 31
        blocked = await store.query_events(EventQuery(source="signins", actor="adele.vance"))
        [event] = blocked.items
        assert event.result == "failure"
        assert event.display_summary == (
            "adele.vance@contoso.com failed to sign in to Office 365 Exchange Online "
            "from 203.0.113.7 (NL) — blocked by conditional access"
        )
        assert event.result_detail is not None and event.result_detail.startswith("53003: ")
        assert event.details["conditional_access"] == "failure"
        assert event.actor.location is not None and event.actor.location.city == "Amsterdam"
    finally:
        stop.set()
        for worker in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker


async def test_replaying_the_store_group_restores_deleted_state(
    engines: Engines, tmp_path: Path, fixtures_dir: Path
) -> None:
    """An operator can rebuild a store by replaying `aoc.events` from the start."""
    message_log, first = engines.message_log, engines.store
    settings = Settings(data_dir=tmp_path)
    stop = asyncio.Event()
    normalizer = asyncio.create_task(build_normalizer(settings, engines).run(stop))
    sink = asyncio.create_task(build_store(settings, engines).run(stop))
    await publish_replay(message_log, settings, fixtures_dir, include_malformed=False)
    stored = await wait_for(first.count_events, lambda n: n >= STORED_FIXTURE_EVENTS)
    assert stored == STORED_FIXTURE_EVENTS
    stop.set()
    await asyncio.gather(normalizer, sink)

    rebuilt = SqliteEventStore(tmp_path / "rebuilt.sqlite3", retention_days=3650)
    await rebuilt.start()
    moved = await message_log.reset_group(topics.STORE_GROUP, topics.EVENTS, to_offset=0)
    assert set(moved.values()) == {0}
    stop = asyncio.Event()
    sink = asyncio.create_task(build_store(settings, Engines(message_log, rebuilt)).run(stop))
    try:
        stored = await wait_for(rebuilt.count_events, lambda n: n >= STORED_FIXTURE_EVENTS)
        assert stored == STORED_FIXTURE_EVENTS
    finally:
        stop.set()
        await sink
        await rebuilt.stop()
