"""Health that tells the truth (issue 12, finding 3): a store that can be read but refuses writes is
`degraded`, and every write route says so with a 503 problem; an unreachable message log is
`degraded`; an unreachable store is `down`."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from aoc_api.app import create_app
from aoc_api.problems import store_refuses_writes
from aoc_common.event_store.base import StoreError
from aoc_common.event_store.sqlite import SqliteEventStore
from aoc_common.message_log.embedded import EmbeddedMessageLog
from aoc_common.query import EventQuery
from aoc_common.settings import Settings
from tests.utils.asgi import asgi_client
from tests.utils.local_servers import serving
from tests.utils.records import fixture_events

CHATTR = shutil.which("chattr") or "/usr/bin/chattr"


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """The file cannot be written, by anyone: read-only mode, and for root (which writes through
    modes) the immutable attribute."""
    path.chmod(0o444)
    as_root = os.geteuid() == 0
    if as_root:
        subprocess.run([CHATTR, "+i", str(path)], check=True)
    try:
        yield
    finally:
        if as_root:
            subprocess.run([CHATTR, "-i", str(path)], check=True)
        path.chmod(0o644)


@pytest.fixture
async def read_only_store_dir(tmp_path: Path, fixtures_dir: Path) -> Path:
    """A data directory whose events.sqlite3 holds the fixture events."""
    store = SqliteEventStore(tmp_path / "events.sqlite3", retention_days=3650)
    await store.start()
    await store.upsert_events(fixture_events(fixtures_dir))
    await store.stop()
    return tmp_path


async def test_a_read_only_store_is_degraded_and_writes_are_503_problems_saying_why(
    read_only_store_dir: Path,
) -> None:
    settings = Settings(data_dir=read_only_store_dir, retention_days=3650)
    with read_only(read_only_store_dir / "events.sqlite3"), serving(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            health = await client.get("/health")
            events = await client.get("/api/events", params={"page_size": 1})
            event_id = events.json()["items"][0]["id"]
            writes = [
                await client.patch(f"/api/events/{event_id}/tags", json={"tags": ["triage"]}),
                await client.post(f"/api/events/{event_id}/comments", json={"text": "seen"}),
                await client.post("/api/alerts/alert-1/acknowledge"),
            ]

    assert health.status_code == 200  # reads still work: keep it in the load balancer
    assert health.json()["status"] == "degraded"
    store_check = health.json()["checks"]["store"]
    assert store_check["ok"] is True and store_check["writable"] is False
    assert "refuses writes" in store_check["error"]
    assert events.status_code == 200
    for response in writes[:2]:
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert "refuses writes" in response.json()["detail"]
        assert "sqlite" not in response.text  # the store's own message (a path) stays in the log
    assert writes[2].status_code in (404, 503)  # no such alert, or the lookup itself refused


async def test_an_unreachable_message_log_is_degraded_not_down(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.sqlite3")
    await store.start()
    message_log = EmbeddedMessageLog(tmp_path / "log.sqlite3")
    await message_log.start()
    await message_log.stop()  # gone: every call fails
    app = create_app(Settings(data_dir=tmp_path), store=store, message_log=message_log)
    async with asgi_client(app, raise_app_exceptions=True) as client:
        response = await client.get("/health")
    await store.stop()

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["store"] == {"engine": "embedded", "ok": True, "writable": True}
    assert body["checks"]["message_log"]["ok"] is False


async def test_a_stopped_store_is_down_and_reads_are_503_problems(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.sqlite3")
    app = create_app(Settings(data_dir=tmp_path), store=store, message_log=None)
    async with asgi_client(app, raise_app_exceptions=True) as client:
        health = await client.get("/health")
        events = await client.get("/api/events")

    assert health.status_code == 503 and health.json()["status"] == "down"
    assert events.status_code == 503
    assert events.json()["detail"] == "The event store is not available; try again."


@pytest.mark.parametrize(
    ("message", "read_only"),
    [
        ("sqlite event store at /data/events.sqlite3: attempt to write a readonly database", True),
        ("mongo event store could not upsert: not authorized on aoc to execute command", True),
        ("mongo event store could not set tags: NotWritablePrimary", True),
        ("mongo event store could not query: connection refused", False),
        ("sqlite event store at /data/events.sqlite3: database is locked", False),
    ],
)
def test_store_errors_that_mean_read_only_are_told_apart(message: str, read_only: bool) -> None:
    assert store_refuses_writes(StoreError(message)) is read_only


async def test_a_writable_store_is_ok_and_the_probe_leaves_the_events_alone(
    read_only_store_dir: Path,
) -> None:
    store = SqliteEventStore(read_only_store_dir / "events.sqlite3", retention_days=3650)
    await store.start()
    before = await store.query_events(EventQuery(page_size=500))
    app = create_app(Settings(data_dir=read_only_store_dir), store=store, message_log=None)
    async with asgi_client(app, raise_app_exceptions=True) as client:
        health = (await client.get("/health")).json()
    after = await store.query_events(EventQuery(page_size=500))
    await store.stop()

    assert health == {
        "status": "ok",
        "checks": {"store": {"engine": "embedded", "ok": True, "writable": True}},
    }
    assert after == before
