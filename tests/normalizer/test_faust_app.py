"""The Faust shell: agent wiring in Faust's test mode (in-memory channels and tables), and one real
worker against a Kafka-protocol broker (Tansu) that keeps its dedupe table across a restart."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from aoc_common import topics
from aoc_common.events import SCHEMA_VERSION
from aoc_common.http_retry import RetryPolicy
from aoc_common.message_log.base import Message
from aoc_common.message_log.kafka import KafkaMessageLog
from aoc_common.service import serve
from aoc_common.settings import Settings
from aoc_normalizer.enrichment import GraphDirectoryObjects
from aoc_normalizer.faust_app import FaustOptions, NormalizerApp, build_app
from aoc_normalizer.service import DEFINITION as NORMALIZER
from tests.engines.kafka_server import (
    kafka_test_options,
)
from tests.utils.fake_graph import FakeGraph, FakeTokens, directory_record, guid, serving
from tests.utils.records import directory_records, malformed_inputs, raw_record

# Tansu joins groups slowly with production timeouts (see /work/shared/INFRA.md).
TANSU_FAUST = {
    "broker_session_timeout": 6.0,
    "broker_heartbeat_interval": 1.0,
    "broker_rebalance_timeout": 5.0,
    "broker_commit_interval": 0.5,
}


# --- Faust test mode -----------------------------------------------------------------------------


class Sinks:
    """The app's output topics swapped for in-memory channels, each with a subscribed reader."""

    def __init__(self, normalizer: NormalizerApp) -> None:
        app = normalizer.app
        self.readers: dict[str, Any] = {}
        for name in ("events", "dlq"):
            channel = app.channel()
            setattr(normalizer, name, channel)
            self.readers[name] = aiter(channel)  # a channel only delivers to subscribers

    async def next(self, name: str) -> Any:
        return await asyncio.wait_for(anext(self.readers[name]), timeout=5)

    def waiting(self, name: str) -> int:
        return int(self.readers[name].queue.qsize())


@pytest.fixture
def test_mode(tmp_path: Path) -> Iterator[tuple[NormalizerApp, Sinks]]:
    normalizer = build_app(
        Settings(data_dir=tmp_path), options=FaustOptions(batch_size=50, batch_within_s=0.05)
    )
    normalizer.app.finalize()
    normalizer.app.conf.store = "memory://"
    normalizer.app.flow_control.resume()
    yield normalizer, Sinks(normalizer)


async def test_one_hop_publishes_events_keyed_by_dedupe_key_and_bad_records_to_the_dlq(
    test_mode: tuple[NormalizerApp, Sinks], fixtures_dir: Path
) -> None:
    normalizer, sinks = test_mode
    record = next(
        r for r in directory_records(fixtures_dir) if r["id"] == "Directory_0F17A300_0007"
    )
    agent = normalizer.normalize_agents[topics.raw_topic("directory")]
    async with agent.test_context() as normalize_agent:
        await normalize_agent.put(
            raw_record("directory", record).value, key=b"Directory_0F17A300_0007"
        )
        for offset, entry in enumerate(malformed_inputs(fixtures_dir), start=1):
            value = (
                entry["payload"].encode()
                if entry["kind"] == "not_json"
                else raw_record("directory", entry["payload"], offset=offset).value
            )
            await normalize_agent.put(value, key=entry["kind"].encode())
        published = await sinks.next("events")
        dead = [orjson.loads((await sinks.next("dlq")).value) for _ in range(8)]

    assert published.key == b"directory:Directory_0F17A300_0007"
    event = orjson.loads(published.value)
    assert event["schema_version"] == SCHEMA_VERSION and event["enrichment"] == "complete"
    assert event["display_summary"] == (
        "bob.secops@contoso.com added member7@contoso.com to role Role 7"
    )
    assert [d["source_offset"] for d in dead] == list(range(1, 9))
    assert {d["source_topic"] for d in dead} == {"aoc.raw.directory"}
    assert {d["stage"] for d in dead} == {"normalizer"}
    assert dead[0]["key"] == "not_json" and "invalid JSON" in dead[0]["reason"]
    assert base64.b64decode(dead[0]["original_base64"]).startswith(b"{")
    assert sinks.waiting("events") == 0  # nothing but the one good record went on
    assert set(normalizer.seen.keys()) == {"directory:Directory_0F17A300_0007"}


async def test_a_key_is_published_once_and_remembered_in_the_raw_partitions_table(
    test_mode: tuple[NormalizerApp, Sinks], fixtures_dir: Path
) -> None:
    normalizer, sinks = test_mode
    first, second = directory_records(fixtures_dir)[:2]
    agent = normalizer.normalize_agents[topics.raw_topic("directory")]
    async with agent.test_context() as normalize_agent:
        for record in (first, first, second, first):
            await normalize_agent.put(raw_record("directory", record).value, key=record["id"])
        published = [await sinks.next("events") for _ in range(2)]
    assert [e.key for e in published] == [
        f"directory:{first['id']}".encode(),
        f"directory:{second['id']}".encode(),
    ]
    assert sinks.waiting("events") == 0
    assert set(normalizer.seen.keys()) == {f"directory:{first['id']}", f"directory:{second['id']}"}


async def test_expired_sightings_leave_the_worker_memory_and_the_key_is_published_again(
    test_mode: tuple[NormalizerApp, Sinks], fixtures_dir: Path
) -> None:
    normalizer, sinks = test_mode
    record = directory_records(fixtures_dir)[0]
    key = f"directory:{record['id']}"
    agent = normalizer.normalize_agents[topics.raw_topic("directory")]
    async with agent.test_context() as normalize_agent:
        await normalize_agent.put(raw_record("directory", record).value, key=record["id"])
        await sinks.next("events")
        seen_at = normalizer.seen[key]
        eight_days_later = seen_at + 8 * 86_400_000
        assert normalizer.forget_expired(eight_days_later - 2 * 86_400_000) == 0
        assert normalizer.forget_expired(eight_days_later) == 1
        assert key not in normalizer.seen
        await normalize_agent.put(raw_record("directory", record).value, key=record["id"])
        assert (await sinks.next("events")).key == key.encode()


@pytest.mark.parametrize("graph_down", [False, True])
async def test_map_agent_names_directory_ids_through_graph_or_marks_them_pending(
    tmp_path: Path, graph_down: bool
) -> None:
    graph = FakeGraph(down=graph_down)
    graph.add_user(guid(1), "Alice Admin", "alice.admin@contoso.com")
    graph.add_user(guid(2), "Member Seven", "member7@contoso.com")
    record = directory_record("Directory_ids_only", actor_id=guid(1), target_id=guid(2))
    async with serving(graph), httpx.AsyncClient(timeout=5) as client:
        lookup = GraphDirectoryObjects(
            client, FakeTokens(), graph.url, RetryPolicy(max_attempts=2, base_delay_s=0.01)
        )
        normalizer = build_app(
            Settings(data_dir=tmp_path),
            lookup=lookup,
            options=FaustOptions(batch_size=10, batch_within_s=0.05),
        )
        normalizer.app.finalize()
        normalizer.app.conf.store = "memory://"
        normalizer.app.flow_control.resume()
        sinks = Sinks(normalizer)
        async with normalizer.normalize_agents[
            topics.raw_topic("directory")
        ].test_context() as agent:
            await agent.put(raw_record("directory", record).value, key=b"Directory_ids_only")
            event = orjson.loads((await sinks.next("events")).value)
    if graph_down:
        assert event["enrichment"] == "pending"
        assert event["display_summary"] == f"{guid(1)} updated user {guid(2)}"
        assert set(normalizer.names.keys()) == set()
    else:
        assert event["enrichment"] == "complete"
        assert event["display_summary"] == "alice.admin@contoso.com updated user Member Seven"
        assert set(normalizer.names.keys()) == {guid(1), guid(2)}  # cached in the Faust table


# --- one real worker on a Kafka-protocol broker -----------------------------------------------------


@pytest.fixture
async def kafka_log(private_kafka_bootstrap: str) -> AsyncIterator[KafkaMessageLog]:
    message_log = KafkaMessageLog(
        private_kafka_bootstrap, default_partitions=1, **kafka_test_options()
    )
    await message_log.start()
    # One partition everywhere, so "the sentinel came out" means "everything before it was judged".
    await message_log.ensure_topics(topics.ALL_TOPICS, partitions=1)
    yield message_log
    await message_log.stop()


async def events_until(message_log: KafkaMessageLog, key: bytes) -> list[tuple[bytes, dict]]:
    """Every event on aoc.events up to and including the first one keyed `key` (fresh group)."""
    seen: list[tuple[bytes, dict]] = []
    deadline = time.monotonic() + 45
    async with message_log.subscribe([topics.EVENTS], f"test-{uuid.uuid4().hex}") as reader:
        while time.monotonic() < deadline:
            for record in await reader.fetch(500, 1.0):
                seen.append((record.key or b"", orjson.loads(record.value)))
                if record.key == key:
                    return seen
    raise AssertionError(f"{key!r} never reached aoc.events; saw {[k for k, _ in seen]}")


async def publish(message_log: KafkaMessageLog, records: list[dict]) -> None:
    for record in records:  # one produce per record, keyed by record id as the collector does
        value = raw_record("directory", record).value
        await message_log.publish(
            topics.raw_topic("directory"), [Message(record["id"].encode(), value)]
        )


async def test_a_faust_worker_restarted_as_aoc_run_normalizer_drops_redelivered_records(
    kafka_log: KafkaMessageLog, private_kafka_bootstrap: str, tmp_path: Path, fixtures_dir: Path
) -> None:
    bare = directory_record("Directory_ids_only", actor_id=guid(1), target_id=guid(2))
    records = [*directory_records(fixtures_dir)[:3], bare]
    sentinel = {**records[0], "id": "Directory_sentinel_after_restart"}
    graph = FakeGraph()
    graph.add_user(guid(2), "Member Seven", "member7@contoso.com")

    await publish(kafka_log, records)
    async with serving(graph), httpx.AsyncClient(timeout=5) as client:
        first = build_app(
            Settings(data_dir=tmp_path / "first", kafka_bootstrap_servers=private_kafka_bootstrap),
            lookup=GraphDirectoryObjects(client, FakeTokens(), graph.url),
            options=FaustOptions(
                batch_within_s=0.2, overrides={**TANSU_FAUST, "topic_partitions": 1}
            ),
        )
        await first.app.start()
        try:
            published = await events_until(kafka_log, b"directory:Directory_ids_only")
        finally:
            await first.app.stop()
    assert [k for k, _ in published] == [f"directory:{r['id']}".encode() for r in records]
    named = published[-1][1]
    assert (named["enrichment"], named["target_displays"]) == ("complete", ["Member Seven"])
    assert set(first.names.keys()) == {guid(1), guid(2)}  # written to its changelog on the broker

    await publish(kafka_log, [*records, sentinel])  # a redelivery, then one new record
    # The restarted worker is what `aoc run normalizer` runs on Kafka, with production Faust settings
    # except the group timings Settings exposes.
    settings = Settings(
        data_dir=tmp_path / "second",  # a fresh local store: the table must come from its changelog
        kafka_bootstrap_servers=private_kafka_bootstrap,
        kafka_topic_partitions=1,
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=1000,
    )
    stop = asyncio.Event()
    service = asyncio.create_task(serve(NORMALIZER, settings, stop))
    try:
        after_restart = await events_until(kafka_log, b"directory:Directory_sentinel_after_restart")
    finally:
        stop.set()
        await asyncio.wait_for(service, timeout=30)
    assert [k for k, _ in after_restart] == [
        *(f"directory:{r['id']}".encode() for r in records),
        b"directory:Directory_sentinel_after_restart",
    ]
