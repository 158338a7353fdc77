"""The store sink as a service: `aoc.events` → the event store, as consumer group aoc-store."""

from __future__ import annotations

from aoc_common.engines import Engines
from aoc_common.service import ServiceDefinition
from aoc_common.settings import Settings
from aoc_store.runtime import StoreSink


def build(settings: Settings, engines: Engines) -> StoreSink:
    return StoreSink(engines.message_log, engines.store, batch_size=settings.store_batch_max_events)


DEFINITION = ServiceDefinition("store", build)
