"""An API over a real SQLite event store holding every fixture event (normalized by the real core)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from aoc_api.app import create_app
from aoc_common.event_store.sqlite import SqliteEventStore
from aoc_common.message_log.embedded import EmbeddedMessageLog
from aoc_common.settings import Settings
from tests.builders import fixture_events


@pytest.fixture
async def store(tmp_path: Path, fixtures_dir: Path) -> AsyncIterator[SqliteEventStore]:
    store = SqliteEventStore(tmp_path / "events.sqlite3", retention_days=3650)
    await store.start()
    await store.upsert_events(fixture_events(fixtures_dir))
    yield store
    await store.stop()


@pytest.fixture
async def client(tmp_path: Path, store: SqliteEventStore) -> AsyncIterator[httpx.AsyncClient]:
    message_log = EmbeddedMessageLog(tmp_path / "log.sqlite3")
    await message_log.start()
    settings = Settings(data_dir=tmp_path, cors_origins=["https://soc.contoso.example"])
    app = create_app(settings, store=store, message_log=message_log)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://aoc.test") as client:
        yield client
    await message_log.stop()
