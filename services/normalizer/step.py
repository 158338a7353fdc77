"""The normalizer's one step, the same for both shells: a batch of raw records → what to publish.

    process(batch) → events (first sightings, named), dead letters, keys to remember

in this order, whoever calls it: map every record with the core (bad records become dead letters),
drop dedupe keys seen inside the window (and repeats inside the batch), then name directory objects
through the enricher — only for events that will be published. The embedded runtime (`runtime.py`) and
the Faust app (`faust_app.py`) differ only in where they keep what it reads and what they do with its
answer: each passes its own dedupe state and name cache in, publishes the events and dead letters, waits
for the log to acknowledge them, and only then remembers the keys (a key remembered but never published
would lose its event on a redelivery; the other way round only republishes, which the store absorbs).

This module does no publishing and never commits; it reads the clock only when the caller gives no `now`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from aoc_common.codec import encode, encode_key
from aoc_common.dead_letter import DeadLetter
from aoc_common.events import CanonicalEvent, utc_now
from aoc_common.logging import get_logger
from aoc_common.message_log.base import Message, Record
from aoc_common.metrics import DEAD_LETTERS, DUPLICATES_DROPPED, ENRICHMENT_PENDING
from aoc_common.settings import Settings
from aoc_normalizer.core import STAGE, Limits, normalize_message
from aoc_normalizer.dedupe import DedupeWindow, now_ms
from aoc_normalizer.enrichment import DirectoryLookup, Enricher, NameCache
from aoc_normalizer.mapping_pool import EncodedEvent, MappingPool
from aoc_normalizer.mappings import LiveMappings, Mappings

SERVICE = "normalizer"
log = get_logger(__name__)


class DedupeState(Protocol):
    """Where a shell keeps dedupe sightings: a SQLite table (embedded), a changelogged Faust table.

    Keys to remember come grouped by the raw partition their record was read from: on Kafka the raw key
    decides the dedupe key, so a partition's sightings can live with that partition (one hop, and they
    move with it on a rebalance). A store without partitions just takes them all.
    """

    def seen_at(self, keys: Sequence[str]) -> Mapping[str, int]: ...

    def remember(self, keys_by_partition: Mapping[int, Sequence[str]], at_ms: int) -> None: ...


@dataclass(slots=True)
class Processed:
    """What one batch became. `remember` only after `events` were acknowledged by the log."""

    events: list[CanonicalEvent | EncodedEvent] = field(default_factory=list)
    dead_letters: list[tuple[Record, DeadLetter]] = field(default_factory=list)
    remember: dict[int, list[str]] = field(default_factory=dict)  # raw partition → dedupe keys
    duplicates: int = 0
    at_ms: int = 0

    def event_messages(self) -> list[Message]:
        """Events for `aoc.events`, keyed by dedupe_key: every version of a record in one partition."""
        return [
            Message(encode_key(e.dedupe_key), e.value if isinstance(e, EncodedEvent) else encode(e))
            for e in self.events
        ]

    def dead_letter_messages(self) -> list[Message]:
        """Dead letters for `aoc.dlq`, keyed like the raw record they replace."""
        return [Message(record.key, encode(letter)) for record, letter in self.dead_letters]


def limits_from(settings: Settings) -> Limits:
    """The input limits in force, from settings (the one place they are read)."""
    return Limits(
        max_record_bytes=settings.max_record_bytes,
        max_future_skew=timedelta(minutes=settings.max_future_skew_minutes),
    )


class NormalizerStep:
    """The mapping in force, the limits, the dedupe window over a passed-in state, and the enricher.

    With a `pool`, records are mapped and encoded in worker processes (`mapping_pool.py`); the rest of
    the step — dedupe, naming, what is remembered — is the same, in the same order.
    """

    def __init__(
        self,
        mappings: LiveMappings,
        *,
        limits: Limits,
        dedupe: DedupeWindow,
        seen: DedupeState,
        enricher: Enricher,
        pool: MappingPool | None = None,
    ) -> None:
        self.mappings = mappings
        self.limits = limits
        self.dedupe = dedupe
        self.seen = seen
        self.enricher = enricher
        self.pool = pool

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        seen: DedupeState,
        names: NameCache,
        lookup: DirectoryLookup | None = None,
        mappings: LiveMappings | None = None,
        workers: int = 0,
    ) -> NormalizerStep:
        """The step as settings describe it (mappings read now: a bad file stops the start); with
        `workers` > 0, mapping in that many worker processes."""
        limits = limits_from(settings)
        pool = (
            MappingPool(workers, settings.mappings_path, limits, names_wanted=lookup is not None)
            if workers > 0
            else None
        )
        return cls(
            mappings or LiveMappings.load(settings.mappings_path),
            limits=limits,
            dedupe=DedupeWindow(timedelta(days=settings.dedupe_window_days)),
            seen=seen,
            enricher=Enricher(lookup, names, timedelta(hours=settings.enrichment_cache_ttl_hours)),
            pool=pool,
        )

    async def process(self, records: Sequence[Record], now: datetime | None = None) -> Processed:
        """Map, dedupe, then name: the batch's outcome, nothing published or remembered yet."""
        mappings = self.mappings.current()
        now = now or utc_now()
        at_ms = now_ms(now)
        processed = Processed(at_ms=at_ms)
        if self.pool is None:
            outcomes: Sequence[CanonicalEvent | EncodedEvent | DeadLetter] = [
                normalize_message(record, mappings, now=now, limits=self.limits)
                for record in records
            ]
        else:
            outcomes = await self.pool.map(records, now)
        mapped: list[tuple[Record, CanonicalEvent | EncodedEvent]] = []
        for record, outcome in zip(records, outcomes, strict=True):
            if isinstance(outcome, DeadLetter):
                processed.dead_letters.append((record, outcome))
                log.info(
                    "dead-lettered",
                    reason=outcome.reason,
                    topic=record.topic,
                    offset=record.offset,
                )
            else:
                mapped.append((record, outcome))
        keys = [event.dedupe_key for _, event in mapped]
        fresh = self.dedupe.first_sightings(keys, self.seen.seen_at(keys), at_ms)
        first_sightings = [pair for pair, keep in zip(mapped, fresh, strict=True) if keep]
        processed.duplicates = len(mapped) - len(first_sightings)
        named = await self._named([e for _, e in first_sightings], mappings, now)
        processed.events = named
        for (record, _), event in zip(first_sightings, named, strict=True):
            processed.remember.setdefault(record.partition, []).append(event.dedupe_key)
        _count(processed)
        return processed

    async def _named(
        self, events: list[CanonicalEvent | EncodedEvent], mappings: Mappings, now: datetime
    ) -> list[CanonicalEvent | EncodedEvent]:
        """Events with directory names filled in; an encoded event is decoded only if it has ids."""
        if not self.enricher.enabled:
            return events
        named = [
            CanonicalEvent.model_validate_json(e.value)
            if isinstance(e, EncodedEvent) and e.needs_names
            else e
            for e in events
        ]
        models = [i for i, e in enumerate(named) if isinstance(e, CanonicalEvent)]
        enriched = await self.enricher.enrich([named[i] for i in models], mappings, now)  # type: ignore[misc]
        for i, event in zip(models, enriched, strict=True):
            named[i] = event
        return named

    def close(self) -> None:
        """Stop the worker processes, if any."""
        if self.pool is not None:
            self.pool.close()


def _count(processed: Processed) -> None:
    if processed.dead_letters:
        DEAD_LETTERS.labels(SERVICE, STAGE).inc(len(processed.dead_letters))
    if processed.duplicates:
        DUPLICATES_DROPPED.labels(SERVICE).inc(processed.duplicates)
    pending = sum(1 for e in processed.events if getattr(e, "enrichment", None) == "pending")
    if pending:
        ENRICHMENT_PENDING.labels(SERVICE).inc(pending)
