"""The event store: MongoDB in production, SQLite on one machine (see base.py)."""

from __future__ import annotations

from aoc_common.event_store.base import EventStore, StoreError
from aoc_common.settings import Settings

__all__ = ["EventStore", "StoreError", "open_event_store"]


def open_event_store(settings: Settings) -> EventStore:
    """The engine the settings choose (not started yet: call `start()`)."""
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
