"""The store sink's shell: `aoc.events` in, bulk upserts into the event store, commit after the write.

If the store is down the batch is not committed and is read again after a backoff; nothing is lost. The
embedded store also needs retention applied by someone, and the sink is the one writer, so it does that.

Throughput (bench/store_sink.py): the sink takes up to `BATCH_SIZE` records per batch when they are
waiting (a backlog, a replay), so each write transaction costs one disk sync and one search-index
segment for 2,000 events instead of 500 (1.16× the events per CPU second, same run), and it lets Python's
garbage collector run less often (`collect_garbage_less_often`).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Sequence
from typing import Protocol

from aoc_common import topics
from aoc_common.consumed_events import EventToStore
from aoc_common.dead_letter import DeadLetter
from aoc_common.event_store.base import EventWriter, StoreError, StoreLifecycle
from aoc_common.logging import get_logger
from aoc_common.message_log.base import MessageLog, Record
from aoc_common.message_log.consumer import Consumer
from aoc_common.metrics import EVENTS_STORED
from aoc_common.query import UpsertResult
from aoc_store.core import STAGE, dead_letter_for, decode_events

PURGE_EVERY_S = 3600.0
# Container objects allocated (net) before Python's cyclic garbage collector runs (default 700).
YOUNG_GENERATION_THRESHOLD = 50_000
# Records per batch at most (STORE_BATCH_MAX_EVENTS); fewer when fewer are waiting (a fetch never
# waits to fill a batch).
BATCH_SIZE = 2_000
log = get_logger(__name__)


class SinkStore(EventWriter, StoreLifecycle, Protocol):
    """What the sink needs of a store: to write events, and `ping` to tell a store that is down
    (retry the batch) from one that refuses an event (dead-letter it)."""


class StoreSink(Consumer):
    """Reads `aoc.events` as aoc-store. Not an EventConsumer: it checks only what the store relies
    on and stores each event's JSON as published (see `decode_events`), at a tenth of the cost."""

    service = STAGE

    def __init__(
        self, message_log: MessageLog, store: SinkStore, *, batch_size: int = BATCH_SIZE
    ) -> None:
        super().__init__(
            message_log, topics=[topics.EVENTS], group=topics.STORE_GROUP, batch_size=batch_size
        )
        self.store = store
        self._last_purge = 0.0

    async def on_start(self, stop: asyncio.Event) -> None:
        collect_garbage_less_often()

    async def handle(self, records: Sequence[Record]) -> list[DeadLetter]:
        batch = decode_events(records)
        dead_letters = list(batch.dead_letters)
        if batch.events:
            try:
                result = await self.store.upsert_encoded(
                    [consumed.event for consumed in batch.events]
                )
            except StoreError:
                result, refused = await self._upsert_one_by_one(batch.events)
                dead_letters += refused
            EVENTS_STORED.labels(self.service, "inserted").inc(result.inserted)
            EVENTS_STORED.labels(self.service, "updated").inc(result.updated)
        await self._purge_if_due()
        return dead_letters

    async def _upsert_one_by_one(
        self, events: Sequence[EventToStore]
    ) -> tuple[UpsertResult, list[DeadLetter]]:
        """A batch failed: if the store is down, raise (the batch is retried after a backoff); if it
        is up, it refused some event, so store the others and dead-letter the ones it refuses, instead
        of retrying one poison event forever."""
        await self.store.ping()
        total = UpsertResult()
        refused: list[DeadLetter] = []
        for consumed in events:
            record, event = consumed.record, consumed.event
            try:
                total += await self.store.upsert_encoded([event])
            except StoreError as error:
                await self.store.ping()
                log.warning(
                    "store refused an event", dedupe_key=event.fields.dedupe_key, error=str(error)
                )
                refused.append(dead_letter_for(record, f"store refused the event: {error}"))
        return total, refused

    async def _purge_if_due(self) -> None:
        if time.monotonic() - self._last_purge < PURGE_EVERY_S:
            return
        self._last_purge = time.monotonic()
        purged = await self.store.purge_expired()
        if purged:
            log.info("retention purge", purged=purged)


def collect_garbage_less_often() -> None:
    """Let the cyclic garbage collector run every 50,000 net container allocations instead of 700.

    Decoding an event allocates dozens of containers, and a batch of them stays alive while it is
    written, so with the default the collector ran every few events and, every hundred runs or so,
    walked every object of the process: 10-17 % of the sink's CPU (bench/store_sink.py, same run;
    nearly all of it gone with this). Reference counting still frees everything that is not a
    cycle at once; cycles wait a little longer. The setting is the process's: `aoc run store` and
    each process of `aoc demo` run one service.
    """
    if gc.get_threshold()[0] < YOUNG_GENERATION_THRESHOLD:
        gc.set_threshold(YOUNG_GENERATION_THRESHOLD)
