"""`aoc mcp` as an AI assistant sees it: launched as a subprocess over stdio by the MCP client,
reading a store (embedded, and MongoDB over the wire) filled with the fixture events and one
alert."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from aoc_common.engines import Engines
from aoc_common.event_store.base import EventStore
from aoc_common.event_store.mongo import MongoEventStore
from aoc_common.events import CanonicalEvent
from aoc_common.rules import Alert
from aoc_common.source_health import SourceHealth, write_source_health
from tests.utils.records import fixture_events

AOC = str(Path(sys.executable).parent / "aoc")
CALL_TIMEOUT_S = 30.0
pytestmark = pytest.mark.every_engine_kind  # each store the server reads: SQLite, MongoDB

TOOLS = {"search_events", "get_event", "list_alerts", "filter_options", "source_health"}


async def fill(store: EventStore, events: list[CanonicalEvent]) -> None:
    await store.upsert_events(events)
    await store.insert_alerts(
        [
            Alert(
                id="alert-1",
                rule_id="mailbox-forwarding-external",
                rule_name="Mailbox forwarding to an external address",
                severity="high",
                created_at=datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
                summary=events[0].display_summary,
                event_ids=[events[0].id],
            )
        ]
    )
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    await write_source_health(
        store,
        SourceHealth(
            source="directory", status="ok", last_run_at=now, last_success_at=now, last_count=71
        ),
    )


@pytest.fixture
def events(fixtures_dir: Path) -> list[CanonicalEvent]:
    return fixture_events(fixtures_dir)


@asynccontextmanager
async def mcp_session(store_env: dict[str, str]) -> AsyncIterator[ClientSession]:
    """`aoc mcp` over stdio. (A context manager, not a fixture: the client's task group must be
    left in the task that entered it.)"""
    server = StdioServerParameters(
        command=AOC,
        args=["mcp"],
        env={**store_env, "RETENTION_DAYS": "3650", "LOG_LEVEL": "WARNING"},
        cwd=store_env["DATA_DIR"],  # no .env of the working copy
    )
    async with (
        stdio_client(server) as (read, write),
        ClientSession(read, write, read_timeout_seconds=CALL_TIMEOUT_S) as session,
    ):
        await session.initialize()
        yield session


@pytest.fixture
async def store_env(
    request: pytest.FixtureRequest, engines: Engines, tmp_path: Path, events: list[CanonicalEvent]
) -> dict[str, str]:
    """The settings (environment) of a store holding the fixtures, on each engine."""
    store = engines.store
    await fill(store, events)
    env = {"DATA_DIR": str(tmp_path), "STORE_ENGINE": store.engine}
    if isinstance(store, MongoEventStore):
        env |= {"MONGO_URI": request.getfixturevalue("mongo_uri"), "MONGO_DB": store.db_name}
    return env


async def call(session: ClientSession, tool: str, **arguments: Any) -> Any:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


async def error_of(session: ClientSession, tool: str, arguments: dict[str, Any]) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error
    return str(result.content[0].text)  # type: ignore[union-attr]


async def test_the_mcp_server_lists_only_read_only_tools(store_env: dict[str, str]) -> None:
    async with mcp_session(store_env) as session:
        tools = (await session.list_tools()).tools

    assert {t.name for t in tools} == TOOLS
    search = next(t for t in tools if t.name == "search_events")
    assert {"service", "actor", "operation", "start", "end", "search", "cursor"} <= set(
        search.input_schema["properties"]
    )


async def test_search_events_filters_pages_and_get_event_returns_the_raw_record(
    store_env: dict[str, str], events: list[CanonicalEvent]
) -> None:
    expected = sorted(
        (e for e in events if e.service == "Entra ID" and e.operation == "Add user"),
        key=lambda e: (e.timestamp, e.id),
        reverse=True,
    )

    async with mcp_session(store_env) as session:
        filters = {"service": "Entra ID", "operation": "Add user", "page_size": 10}
        first = await call(session, "search_events", **filters)
        second = await call(session, "search_events", **filters, cursor=first["next_cursor"])
        found = first["events"] + second["events"]
        one = await call(session, "get_event", event_id=found[0]["id"])

    assert [e["id"] for e in found] == [e.id for e in expected]
    assert second["next_cursor"] is None
    assert found[0]["summary"] == expected[0].display_summary
    assert "raw" not in found[0]
    assert one["id"] == expected[0].id
    assert one["raw"] == expected[0].raw


async def test_alerts_filter_options_and_source_health_are_served(
    store_env: dict[str, str],
) -> None:
    async with mcp_session(store_env) as session:
        open_high = await call(session, "list_alerts", status="open", severity="high")
        acknowledged = await call(session, "list_alerts", status="acknowledged")
        options = await call(session, "filter_options")
        health = await call(session, "source_health")

    assert [a["id"] for a in open_high["items"]] == ["alert-1"]
    assert acknowledged["items"] == []
    assert "Exchange" in options["services"]
    assert [(s["source"], s["status"]) for s in health["sources"]][:1] == [("directory", "ok")]


HOSTILE_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("search_events", {"page_size": "lots"}, "page_size"),
    ("search_events", {"page_size": 10_000}, "page_size"),
    ("search_events", {"actor": "x" * 100_000}, "actor"),
    ("search_events", {"source": "everything"}, "source"),
    ("search_events", {"start": "yesterday-ish"}, "start"),
    ("search_events", {"cursor": "not-a-cursor"}, "cursor"),
    (
        "search_events",
        {"start": "2026-11-20T00:00:00Z", "end": "2026-11-01T00:00:00Z"},
        "end is before start",
    ),
    ("get_event", {"event_id": "no-such-event"}, "no event"),
    ("get_event", {"event_id": "e" * 5000}, "event_id"),
    ("get_event", {}, "event_id"),
    ("list_alerts", {"severity": "apocalyptic"}, "severity"),
]


async def test_hostile_arguments_are_tool_errors_and_the_server_keeps_serving(
    store_env: dict[str, str],
) -> None:
    async with mcp_session(store_env) as session:
        for tool, arguments, reason in HOSTILE_CALLS:
            message = await error_of(session, tool, arguments)
            assert reason in message, (tool, arguments, message)
        still = await call(session, "search_events", page_size=1)

    assert len(still["events"]) == 1
