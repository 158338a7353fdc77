"""The store sink never loses an event: a store that is down means retry, a store that refuses one
event means a dead letter for that event and the rest stored."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson
from secantus import SecantusDBServer

from aoc_common import topics
from aoc_common.codec import encode, encode_key
from aoc_common.consumed_events import decode_events_to_store
from aoc_common.event_store.base import EventStore, PreparedUpsert
from aoc_common.event_store.encoded import EncodedEvent, IndexedFieldsModel
from aoc_common.event_store.mongo import MongoEventStore
from aoc_common.event_store.sqlite import SqliteEventStore
from aoc_common.events import CanonicalEvent
from aoc_common.message_log.base import Message, Record
from aoc_common.message_log.embedded import EmbeddedMessageLog
from aoc_common.query import UpsertResult
from aoc_store.runtime import StoreSink
from tests.utils.local_servers import free_port
from tests.utils.records import an_event
from tests.utils.topic_io import read_topic
from tests.utils.waiting import wait_for


@contextlib.asynccontextmanager
async def running_sink(
    message_log: EmbeddedMessageLog,
    store: EventStore,
    events: Sequence[CanonicalEvent],
    **sink_options: Any,
) -> AsyncIterator[None]:
    """`events` on the normalized topic and a store sink consuming them for the block; then the
    sink, the store and the log stopped."""
    await message_log.start()
    await store.start()
    await message_log.publish(
        topics.EVENTS, [Message(encode_key(e.dedupe_key), encode(e)) for e in events]
    )
    stop = asyncio.Event()
    sink = asyncio.create_task(StoreSink(message_log, store, **sink_options).run(stop))
    try:
        yield
    finally:
        stop.set()
        await sink
        await store.stop()
        await message_log.stop()


async def test_an_event_the_store_refuses_is_dead_lettered_and_the_rest_stored(
    tmp_path: Path, mongo_uri: str
) -> None:
    message_log = EmbeddedMessageLog(tmp_path / "log.sqlite3")
    store = MongoEventStore(mongo_uri, f"sink_{uuid.uuid4().hex[:10]}")  # SQLite takes it
    # BSON cannot hold a key with a NUL byte: MongoDB refuses this one event, whatever is retried.
    events = [an_event("good-1"), an_event("poison", raw={"bad\x00key": 1}), an_event("good-2")]
    async with running_sink(message_log, store, events):
        dead = await read_topic(message_log, topics.DLQ, 1)
        assert len(dead) == 1
        letter = orjson.loads(dead[0].value)
        assert letter["stage"] == "store"
        assert letter["reason"].startswith("store refused the event")
        assert letter["key"] == "directory:poison"
        assert await wait_for(store.count_events, lambda n: n >= 2) == 2
        assert (
            await wait_for(
                lambda: message_log.lag(topics.STORE_GROUP, topics.EVENTS), lambda n: n == 0
            )
            == 0
        )


class StoreThatCannotPrepare(SqliteEventStore):
    """Preparing any batch holding the event keyed `poison` raises, as a bug or a value no
    decode foresaw would."""

    def prepare_upsert(self, events: Sequence[EncodedEvent]) -> PreparedUpsert:
        if any(event.fields.dedupe_key == "directory:poison" for event in events):
            raise ValueError("no such value was foreseen")
        return super().prepare_upsert(events)


async def test_an_event_that_cannot_be_prepared_is_dead_lettered_and_the_rest_stored(
    tmp_path: Path,
) -> None:
    message_log = EmbeddedMessageLog(tmp_path / "log.sqlite3")
    store = StoreThatCannotPrepare(tmp_path / "events.sqlite3")
    events = [an_event("good-1"), an_event("poison"), an_event("good-2")]
    async with running_sink(message_log, store, events):
        dead = await read_topic(message_log, topics.DLQ, 1)
        letter = orjson.loads(dead[0].value)
        assert (letter["key"], letter["stage"]) == ("directory:poison", "store")
        assert "could not prepare the event" in letter["reason"]
        assert await wait_for(store.count_events, lambda n: n >= 2) == 2
        lag = await wait_for(
            lambda: message_log.lag(topics.STORE_GROUP, topics.EVENTS), lambda n: n == 0
        )
        assert lag == 0


async def test_events_wait_in_the_log_while_the_store_is_down(tmp_path: Path) -> None:
    port = free_port()
    server = SecantusDBServer(storage_path=":memory:", host="127.0.0.1", port=port)
    server.start()
    message_log = EmbeddedMessageLog(tmp_path / "log.sqlite3")
    store = MongoEventStore(f"mongodb://127.0.0.1:{port}", "aoc", server_selection_timeout_ms=300)
    await message_log.start()
    await store.start()
    server.stop()  # the database goes away after the sink started

    await message_log.publish(
        topics.EVENTS, [Message(None, encode(an_event(f"e{i}"))) for i in range(5)]
    )
    stop = asyncio.Event()
    sink = asyncio.create_task(StoreSink(message_log, store).run(stop))
    try:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # the sink keeps failing and committing nothing
            assert await message_log.lag(topics.STORE_GROUP, topics.EVENTS) == 5
            await asyncio.sleep(0.2)

        server = SecantusDBServer(storage_path=":memory:", host="127.0.0.1", port=port)
        server.start()
        assert await wait_for(store.count_events, lambda n: n >= 5, timeout_s=60) == 5
        assert (
            await wait_for(
                lambda: message_log.lag(topics.STORE_GROUP, topics.EVENTS), lambda n: n == 0
            )
            == 0
        )
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await sink
        await store.stop()
        await message_log.stop()
        server.stop()


def test_the_sink_reads_what_it_indexes_and_says_why_it_cannot_store_the_rest() -> None:
    """The sink's decode (orjson, then pydantic on the dict) keeps pydantic's answers: a record
    orjson refuses is read by pydantic's own parser, so it is stored or refused as before."""
    good = an_event("good")
    document = orjson.loads(encode(good))
    # JSON that orjson refuses and pydantic reads (a number past a double's range in `raw`).
    big_number = encode(good).replace(b'"raw":{"id":"good"}', b'"raw":{"n":1e400}')
    assert big_number != encode(good)
    no_key = orjson.dumps({k: v for k, v in document.items() if k != "dedupe_key"})
    values = [encode(good), big_number, b'{"id": "x", ', b"[1, 2]", no_key]
    records = [Record(topics.EVENTS, 0, n, None, value, 0) for n, value in enumerate(values)]

    decoded = decode_events_to_store(records, stage="store")

    assert [e.record.offset for e in decoded.events] == [0, 1]
    assert (
        decoded.events[0].event.fields
        == IndexedFieldsModel.model_validate_json(values[0]).indexed()
    )
    assert decoded.events[0].event.json == values[0]
    reasons = [letter.reason for letter in decoded.dead_letters]
    assert reasons[0].startswith("not a canonical event") and "Invalid JSON" in reasons[0]
    assert reasons[1].startswith("not a canonical event")
    assert "dedupe_key: Field required" in reasons[2]


async def test_a_started_sink_runs_the_garbage_collector_less_often_and_hands_the_gil_sooner(
    tmp_path: Path,
) -> None:
    """Decoding keeps a batch of objects alive: with Python's default the collector ran every few
    events (10-17 % of the sink's CPU in bench/store_sink.py); the store's thread waited up to
    5 ms for the GIL between its statements while the loop read the next batch."""
    default, interval = gc.get_threshold(), sys.getswitchinterval()
    gc.set_threshold(700)
    sys.setswitchinterval(0.005)
    sink = StoreSink(
        EmbeddedMessageLog(tmp_path / "log.sqlite3"), SqliteEventStore(tmp_path / "e.sqlite3")
    )
    try:
        await sink.on_start(asyncio.Event())
        assert gc.get_threshold()[0] >= 50_000
        assert sys.getswitchinterval() <= 0.0005
    finally:
        gc.set_threshold(*default)
        sys.setswitchinterval(interval)


class GatedStore(SqliteEventStore):
    """The embedded store, with every write waiting for `gate` and a log of the calls."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = asyncio.Event()
        self.calls: list[tuple[str, list[str]]] = []

    def prepare_upsert(self, events: Sequence[EncodedEvent]) -> PreparedUpsert:
        self.calls.append(("prepare", [e.fields.dedupe_key for e in events]))
        return super().prepare_upsert(events)

    async def upsert_prepared(self, prepared: PreparedUpsert) -> UpsertResult:
        self.calls.append(("writing", [e.fields.dedupe_key for e in prepared.events]))
        await self.gate.wait()
        return await super().upsert_prepared(prepared)


async def test_the_sink_prepares_the_next_batch_while_one_is_written_and_commits_after_each(
    tmp_path: Path,
) -> None:
    message_log = EmbeddedMessageLog(tmp_path / "log.sqlite3")
    store = GatedStore(tmp_path / "events.sqlite3")
    events = [an_event(f"e{n}") for n in range(6)]
    async with running_sink(message_log, store, events, batch_size=2):
        try:
            await wait_for(lambda: store.calls, lambda calls: len(calls) >= 3)
            assert store.calls[:3] == [
                ("prepare", ["directory:e0", "directory:e1"]),
                ("writing", ["directory:e0", "directory:e1"]),
                ("prepare", ["directory:e2", "directory:e3"]),
            ]
            # Nothing is committed, nor the next batch written, before the batch in hand is stored.
            assert await message_log.lag(topics.STORE_GROUP, topics.EVENTS) == 6
            assert await store.count_events() == 0
            store.gate.set()
            await wait_for(
                lambda: message_log.lag(topics.STORE_GROUP, topics.EVENTS), lambda n: n == 0
            )
            assert await store.count_events() == 6
            writes = [keys for kind, keys in store.calls if kind == "writing"]
            assert writes == [[f"directory:e{n}", f"directory:e{n + 1}"] for n in (0, 2, 4)]
        finally:
            store.gate.set()  # a sink waiting on the gate could not stop
