"""The live collector feeding the real pipeline, on the embedded engines and on Kafka + MongoDB."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from aoc_collector.core import watermark_key
from aoc_collector.fake_microsoft import FakeMicrosoft
from aoc_common.event_store.base import EventStore
from aoc_common.message_log.base import MessageLog
from aoc_common.settings import Settings
from aoc_common.source_health import read_source_health
from aoc_normalizer.runtime import Normalizer
from aoc_store.runtime import StoreSink
from tests.collector.conftest import FIXTURE_COUNTS, build_harness, raw_keys
from tests.engines.pipeline_engines import ENGINE_KINDS, started_engines


@pytest.fixture(params=ENGINE_KINDS)
async def engines(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[MessageLog, EventStore]]:
    async with started_engines(
        request, tmp_path, database_prefix="coll", kafka_fixture="private_kafka_bootstrap"
    ) as engines:
        yield engines


async def test_two_overlapping_runs_store_every_fixture_record_exactly_once(
    engines: tuple[MessageLog, EventStore],
    fake_server: tuple[FakeMicrosoft, str, httpx.AsyncClient],
    tmp_path: Path,
) -> None:
    message_log, store = engines
    harness = build_harness(fake_server, message_log, store)
    before = {s: len(await raw_keys(message_log, s)) for s in FIXTURE_COUNTS}
    collector = harness.make()
    stop = asyncio.Event()
    settings = Settings(data_dir=tmp_path)
    workers = [
        asyncio.create_task(Normalizer.from_settings(message_log, settings).run(stop)),
        asyncio.create_task(StoreSink(message_log, store).run(stop)),
    ]
    try:
        first = await collector.run()
        harness.clock.advance(timedelta(minutes=30))
        second = await collector.run()

        assert {r.source: r.count for r in first.sources} == FIXTURE_COUNTS
        assert second.total == 0
        for source, expected in FIXTURE_COUNTS.items():
            keys = await raw_keys(message_log, source, before[source] + expected)
            assert len(keys) - before[source] == expected, source
        deadline = time.monotonic() + 60
        total = sum(FIXTURE_COUNTS.values())
        while await store.count_events() < total and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await store.count_events() == total
        assert (await store.get_state(watermark_key("intune")) or {})["watermark"]
        health = await read_source_health(store)
        assert [(h.source, h.status, h.last_count) for h in health] == [
            (source, "ok", 0) for source in FIXTURE_COUNTS
        ]
    finally:
        stop.set()
        for worker in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
