"""The event store: MongoDB in production, SQLite on one machine (see base.py).

`open_event_store` returns the engine, which implements every narrow view (`EventReader`,
`EventWriter`, `StateStore`, `RuleStore`, `AlertStore`) and the lifecycle: whoever wires a service
opens and starts it, then hands the service the view the service is typed with.
"""

from __future__ import annotations

from aoc_common.event_store.base import (
    AlertStore,
    EventReader,
    EventStore,
    EventWriter,
    RuleStore,
    StateStore,
    StoreError,
    StoreLifecycle,
)
from aoc_common.event_store.encoded import EncodedEvent
from aoc_common.settings import Settings

__all__ = [
    "AlertStore",
    "EncodedEvent",
    "EventReader",
    "EventStore",
    "EventWriter",
    "RuleStore",
    "StateStore",
    "StoreError",
    "StoreLifecycle",
    "open_event_store",
]


def open_event_store(settings: Settings) -> EventStore:
    """The engine the settings choose (not started yet: call `start()`); one object serving
    every view, so a process that needs several (the API) opens one connection."""
    if settings.resolved_store_engine == "mongo":
        from aoc_common.event_store.mongo import MongoEventStore

        assert settings.mongo_uri is not None
        return MongoEventStore(
            settings.mongo_uri.get_secret_value(),
            settings.mongo_db,
            retention_days=settings.retention_days,
        )
    from aoc_common.event_store.sqlite import SqliteEventStore

    return SqliteEventStore(
        settings.data_dir / "events.sqlite3", retention_days=settings.retention_days
    )
