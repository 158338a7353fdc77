"""A dedupe_key is published once per dedupe window, and the embedded runtime remembers it across a
restart (SQLite beside the log); the store's upsert stays the final guard."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import orjson

from aoc_collector.service import publish_replay
from aoc_common import topics
from aoc_common.engines import Engines
from aoc_common.message_log.base import MessageLog
from aoc_common.metrics import DUPLICATES_DROPPED
from aoc_common.settings import Settings
from aoc_normalizer.dedupe import DedupeWindow
from aoc_normalizer.runtime import Normalizer
from aoc_normalizer.state import SqliteNormalizerState
from tests.utils.expected import COLLECTED_RECORDS, STORED_FIXTURE_EVENTS
from tests.utils.topic_io import read_topic
from tests.utils.waiting import wait_for

DAY_MS = 86_400_000


def test_a_key_seen_inside_the_window_is_a_duplicate_and_one_seen_before_it_is_not() -> None:
    window = DedupeWindow(timedelta(days=7))
    now = 100 * DAY_MS
    assert window.seen_recently(now - 7 * DAY_MS + 1, now)
    assert not window.seen_recently(now - 7 * DAY_MS, now)
    assert not window.seen_recently(None, now)
    assert window.expired_before_ms(now) == now - 7 * DAY_MS


def test_a_key_repeated_inside_one_batch_is_published_once() -> None:
    window = DedupeWindow(timedelta(days=7))
    now = 100 * DAY_MS
    seen = {"directory:old": now - DAY_MS, "directory:expired": now - 8 * DAY_MS}
    keys = ["directory:a", "directory:old", "directory:a", "directory:expired", "directory:b"]
    assert window.first_sightings(keys, seen, now) == [True, False, False, True, True]


def test_sqlite_state_forgets_only_expired_sightings(tmp_path: Path) -> None:
    state = SqliteNormalizerState(tmp_path / "normalizer.sqlite3")
    state.remember({0: ["k-old"]}, 1_000)
    state.remember({0: ["k-new"], 1: ["k-old2"]}, 5_000)
    assert state.forget_before(2_000) == 1
    assert state.seen_at(["k-old", "k-new", "k-old2", "never"]) == {"k-new": 5_000, "k-old2": 5_000}
    state.close()


async def run_until_caught_up(message_log: MessageLog, settings: Settings) -> None:
    stop = asyncio.Event()
    worker = asyncio.create_task(Normalizer.from_settings(message_log, settings).run(stop))

    async def lag() -> int:
        return sum([await message_log.lag(topics.NORMALIZER_GROUP, t) for t in topics.RAW_TOPICS])

    try:
        assert await wait_for(lag, lambda n: n == 0) == 0
    finally:
        stop.set()
        await worker


async def test_the_embedded_normalizer_remembers_published_keys_across_a_restart(
    engines: Engines, tmp_path: Path, fixtures_dir: Path
) -> None:
    message_log = engines.message_log
    settings = Settings(data_dir=tmp_path)
    await publish_replay(message_log, settings, fixtures_dir, include_malformed=False)
    await run_until_caught_up(message_log, settings)
    first = await read_topic(message_log, topics.EVENTS, STORED_FIXTURE_EVENTS)
    assert len(first) == STORED_FIXTURE_EVENTS

    # The collector delivers everything again (a Management API redelivery); a new process reads it.
    before = DUPLICATES_DROPPED.labels("normalizer")._value.get()
    await publish_replay(message_log, settings, fixtures_dir, include_malformed=False)
    await run_until_caught_up(message_log, settings)
    dropped = DUPLICATES_DROPPED.labels("normalizer")._value.get() - before
    assert dropped == sum(COLLECTED_RECORDS.values())
    assert sum((await message_log.end_offsets(topics.EVENTS)).values()) == len(first)
    keys = {orjson.loads(r.value)["dedupe_key"] for r in first}
    assert len(keys) == STORED_FIXTURE_EVENTS
