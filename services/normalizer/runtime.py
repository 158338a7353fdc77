"""The normalizer's shell on any message log: raw topics in, `aoc.events` and `aoc.dlq` out.

This is the embedded runtime (`aoc demo`, a single-machine `aoc run normalizer`); on Kafka the Faust app
(`faust_app.py`) is the other shell around the same step (`step.py`: map, dedupe, name). Per batch: run the
step with the SQLite state beside the log, publish events and dead letters, and only once the log has
acknowledged them remember the published keys. Events are keyed by dedupe_key, so every version of one
audit record lands in one partition, in order. The run loop, retries, lag and consumer metrics are the
consumer base's (`aoc_common.message_log.consumer.Consumer`), which commits after `handle` returned:
at-least-once; a crash between publish and remember republishes a batch, which the store's upsert absorbs.
A crash never loses an event.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Sequence
from datetime import timedelta

import httpx

from aoc_common import topics
from aoc_common.dead_letter import DeadLetter
from aoc_common.http_retry import RetryPolicy
from aoc_common.logging import get_logger
from aoc_common.message_log.base import MessageLog, Record
from aoc_common.message_log.consumer import Consumer
from aoc_common.metrics import MESSAGES_PUBLISHED
from aoc_common.settings import Settings
from aoc_normalizer.core import Limits
from aoc_normalizer.dedupe import DedupeWindow
from aoc_normalizer.enrichment import (
    Enricher,
    GraphDirectoryObjects,
    TokenSource,
)
from aoc_normalizer.mappings import LiveMappings, Mappings
from aoc_normalizer.state import SqliteNormalizerState
from aoc_normalizer.step import SERVICE, NormalizerStep, limits_from

__all__ = ["GRAPH_RETRIES", "GRAPH_TIMEOUT", "Normalizer", "graph_lookup", "limits_from"]

STATE_FILE = "normalizer.sqlite3"
PURGE_EVERY_S = 3600.0
GRAPH_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# Enrichment may delay a batch, not hold it: a few attempts and a bounded Retry-After, then "pending".
GRAPH_RETRIES = RetryPolicy(
    max_attempts=3, base_delay_s=0.5, max_delay_s=5.0, max_retry_after_s=30.0
)
log = get_logger(__name__)


def graph_lookup(
    settings: Settings, tokens: TokenSource | None, client: httpx.AsyncClient | None = None
) -> GraphDirectoryObjects | None:
    """The Graph lookup when enrichment is configured and a token source was given, else None (off)."""
    if not settings.enrichment_enabled or tokens is None:
        return None
    return GraphDirectoryObjects(
        client or httpx.AsyncClient(timeout=GRAPH_TIMEOUT),
        tokens,
        settings.graph_base_url,
        GRAPH_RETRIES,
    )


class Normalizer(Consumer):
    """Holds the mapping in force, the dedupe state and the enricher; turns batches into events.

    Its `handle` publishes its dead letters itself, with the events, instead of returning them to the
    base: the step's order is events and dead letters acknowledged, then the keys remembered (and
    the step already counts its dead letters).
    """

    service = SERVICE

    def __init__(
        self,
        message_log: MessageLog,
        mappings: LiveMappings | Mappings,
        limits: Limits,
        *,
        state: SqliteNormalizerState,
        dedupe: DedupeWindow | None = None,
        enricher: Enricher | None = None,
    ) -> None:
        super().__init__(message_log, topics=topics.RAW_TOPICS, group=topics.NORMALIZER_GROUP)
        self.state = state
        self.step = NormalizerStep(
            mappings if isinstance(mappings, LiveMappings) else LiveMappings.fixed(mappings),
            limits=limits,
            dedupe=dedupe or DedupeWindow(),
            seen=state,
            enricher=enricher or Enricher(None, state),
        )
        self.graph_client: httpx.AsyncClient | None = None  # closed by on_stop() when set
        self._purged_at = 0.0
        self._sighup = False

    @property
    def mappings(self) -> LiveMappings:
        return self.step.mappings

    @property
    def dedupe(self) -> DedupeWindow:
        return self.step.dedupe

    @property
    def enricher(self) -> Enricher:
        return self.step.enricher

    @classmethod
    def from_settings(
        cls,
        message_log: MessageLog,
        settings: Settings,
        *,
        tokens: TokenSource | None = None,
        graph_client: httpx.AsyncClient | None = None,
    ) -> Normalizer:
        mappings = LiveMappings.load(settings.mappings_path)
        state = SqliteNormalizerState(settings.data_dir / STATE_FILE)
        lookup = graph_lookup(settings, tokens, graph_client)
        enricher = Enricher(lookup, state, timedelta(hours=settings.enrichment_cache_ttl_hours))
        normalizer = cls(
            message_log,
            mappings,
            limits_from(settings),
            state=state,
            dedupe=DedupeWindow(timedelta(days=settings.dedupe_window_days)),
            enricher=enricher,
        )
        if lookup is not None and graph_client is None:
            normalizer.graph_client = lookup.client
        return normalizer

    async def handle(self, records: Sequence[Record]) -> Sequence[DeadLetter]:
        processed = await self.step.process(records)
        if processed.events:
            await self.message_log.publish(topics.EVENTS, processed.event_messages())
            MESSAGES_PUBLISHED.labels(SERVICE, topics.EVENTS).inc(len(processed.events))
        if processed.dead_letters:
            await self.message_log.publish(topics.DLQ, processed.dead_letter_messages())
        # Acknowledged by the log: only now may a redelivery of these keys be dropped.
        self.state.remember(processed.remember, processed.at_ms)
        self._forget_expired(processed.at_ms)
        return []  # published above, before the keys were remembered

    def _forget_expired(self, at_ms: int) -> None:
        if time.monotonic() - self._purged_at < PURGE_EVERY_S and self._purged_at:
            return
        self._purged_at = time.monotonic()
        forgotten = self.state.forget_before(self.step.dedupe.expired_before_ms(at_ms))
        if forgotten:
            log.info("dedupe window: forgot expired keys", count=forgotten)

    async def on_start(self, stop: asyncio.Event) -> None:
        """SIGHUP (where the loop allows signal handlers) reloads the mappings."""
        self._sighup = install_sighup(asyncio.get_running_loop(), self.mappings)

    async def on_stop(self) -> None:
        if self._sighup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        self.state.close()
        if self.graph_client is not None:
            await self.graph_client.aclose()


def install_sighup(loop: asyncio.AbstractEventLoop, mappings: LiveMappings) -> bool:
    """`kill -HUP <pid>` re-reads mappings.yml; False where signals cannot be handled here."""
    try:
        loop.add_signal_handler(signal.SIGHUP, mappings.request_reload)
    except (NotImplementedError, RuntimeError, ValueError):
        return False  # not the main thread, or no SIGHUP (Windows): mtime polling still applies
    return True
