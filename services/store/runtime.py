"""The store sink's shell: `aoc.events` in, bulk upserts into the event store, commit after the write.

If the store is down the batch is not committed and is read again after a backoff; nothing is lost. The
embedded store also needs retention applied by someone, and the sink is the one writer, so it does that.

Throughput (bench/store_sink.py):
- the sink reads batch N+1 (decodes it and has the store prepare its rows: `prepare_upsert`) on the
  event loop while the store writes batch N on its own thread (`ReadAheadConsumer`). The embedded
  store writes a batch with a few statements that each hold no GIL, so on two cores the two halves
  run side by side; offsets are still committed batch by batch, in order, after each write;
- it takes up to `BATCH_SIZE` records per batch when they are waiting (a backlog, a replay), so
  each write transaction costs one disk sync and one search-index segment for 2,000 events;
- it lets Python's garbage collector run less often and threads hand the GIL over sooner
  (`tune_the_interpreter`).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aoc_common import topics
from aoc_common.consumed_events import DecodedForStore, EventToStore
from aoc_common.dead_letter import DeadLetter
from aoc_common.event_store.base import EventWriter, PreparedUpsert, StoreError, StoreLifecycle
from aoc_common.logging import get_logger
from aoc_common.message_log.base import MessageLog, Record
from aoc_common.message_log.consumer import ReadAheadConsumer
from aoc_common.metrics import EVENTS_STORED
from aoc_common.query import UpsertResult
from aoc_store.core import STAGE, dead_letter_for, decode_events

PURGE_EVERY_S = 3600.0
# Container objects allocated (net) before Python's cyclic garbage collector runs (default 700).
YOUNG_GENERATION_THRESHOLD = 50_000
# How long a thread may keep the GIL while another waits for it (Python's default: 5 ms).
SWITCH_INTERVAL_S = 0.0005
# Records per batch at most (STORE_BATCH_MAX_EVENTS); fewer when fewer are waiting (a fetch never
# waits to fill a batch).
BATCH_SIZE = 2_000
log = get_logger(__name__)


class SinkStore(EventWriter, StoreLifecycle, Protocol):
    """What the sink needs of a store: to write events, and `ping` to tell a store that is down
    (retry the batch) from one that refuses an event (dead-letter it)."""


@dataclass(frozen=True, slots=True)
class ReadBatch:
    """A batch as the sink read it: decoded (events and dead letters) and prepared for the store
    (None when preparing it failed: its events are then written one by one)."""

    decoded: DecodedForStore
    prepared: PreparedUpsert | None


class StoreSink(ReadAheadConsumer[ReadBatch]):
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
        tune_the_interpreter()

    def read(self, records: Sequence[Record]) -> ReadBatch:
        decoded = decode_events(records)
        try:
            prepared = self.store.prepare_upsert([consumed.event for consumed in decoded.events])
        except Exception as error:  # one bad event must not stall the topic
            # Preparing is Python work on values the decode accepted, so a failure is about an
            # event, not the store: raising would re-read this same batch forever.
            log.warning("could not prepare a batch; writing it event by event", error=repr(error))
            prepared = None
        return ReadBatch(decoded, prepared)

    async def write(self, batch: ReadBatch) -> list[DeadLetter]:
        dead_letters = list(batch.decoded.dead_letters)
        if batch.decoded.events:
            try:
                if batch.prepared is None:
                    raise StoreError("the batch could not be prepared")
                result = await self.store.upsert_prepared(batch.prepared)
            except StoreError:
                result, refused = await self._upsert_one_by_one(batch.decoded.events)
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
                prepared = self.store.prepare_upsert([event])
            except Exception as error:  # see `read`
                log.warning(
                    "could not prepare an event",
                    dedupe_key=event.fields.dedupe_key,
                    error=repr(error),
                )
                refused.append(
                    dead_letter_for(record, f"store could not prepare the event: {error!r}")
                )
                continue
            try:
                total += await self.store.upsert_prepared(prepared)
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


def tune_the_interpreter() -> None:
    """Settings of the sink's process (`aoc run store` and each process of `aoc demo` run one
    service), each measured in bench/store_sink.py:

    - the cyclic garbage collector runs every 50,000 net container allocations instead of 700.
      Decoding an event allocates dozens of containers, and a batch of them stays alive while it
      is written, so with the default the collector ran every few events and, every hundred runs
      or so, walked every object of the process: 10-17 % of the sink's CPU. Reference counting
      still frees everything that is not a cycle at once; cycles wait a little longer;
    - a thread waiting for the GIL gets it after 0.5 ms instead of 5: the store's thread needs it
      for a moment between its statements while the event loop prepares the next batch, and
      with 5 ms it waited up to that long a dozen times a batch.
    """
    if gc.get_threshold()[0] < YOUNG_GENERATION_THRESHOLD:
        gc.set_threshold(YOUNG_GENERATION_THRESHOLD)
    if sys.getswitchinterval() > SWITCH_INTERVAL_S:
        sys.setswitchinterval(SWITCH_INTERVAL_S)
