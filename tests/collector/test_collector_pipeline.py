"""The live collector feeding the real pipeline, on the embedded engines and on Kafka + MongoDB."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path

import pytest

from aoc_collector.core import watermark_key
from aoc_common.engines import Engines
from aoc_common.settings import Settings
from aoc_common.source_health import read_source_health
from aoc_normalizer.service import build as build_normalizer
from aoc_store.service import build as build_store
from tests.utils.collector import Harness
from tests.utils.expected import STORED_FIXTURE_EVENTS, UNIQUE_RECORDS
from tests.utils.topic_io import raw_keys
from tests.utils.waiting import wait_for


@pytest.mark.every_engine_kind
@pytest.mark.private_broker
async def test_two_overlapping_runs_store_every_fixture_record_exactly_once(
    harness: Harness, engines: Engines, tmp_path: Path
) -> None:
    message_log, store = engines.message_log, engines.store
    before = {s: len(await raw_keys(message_log, s)) for s in UNIQUE_RECORDS}
    collector = harness.make()
    stop = asyncio.Event()
    settings = Settings(data_dir=tmp_path)
    workers = [
        asyncio.create_task(build_normalizer(settings, engines).run(stop)),
        asyncio.create_task(build_store(settings, engines).run(stop)),
    ]
    try:
        first = await collector.run()
        harness.clock.advance(timedelta(minutes=30))
        second = await collector.run()

        assert {r.source: r.count for r in first.sources} == UNIQUE_RECORDS
        assert second.total == 0
        for source, expected in UNIQUE_RECORDS.items():
            keys = await raw_keys(message_log, source, before[source] + expected)
            assert len(keys) - before[source] == expected, source
        stored = await wait_for(store.count_events, lambda n: n >= STORED_FIXTURE_EVENTS)
        assert stored == STORED_FIXTURE_EVENTS
        assert (await store.get_state(watermark_key("intune")) or {})["watermark"]
        health = await read_source_health(store)
        assert [(h.source, h.status, h.last_count) for h in health] == [
            (source, "ok", 0) for source in UNIQUE_RECORDS
        ]
    finally:
        stop.set()
        for worker in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
