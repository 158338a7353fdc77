"""`aoc mcp` as an AI assistant sees it: launched as a subprocess over stdio by the MCP client,
reading a store (embedded, and MongoDB over the wire) filled with the fixture events and one
alert. (The tool list, and stdio answering as MCP over HTTP does: tests/api/test_mcp_http.py.)"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from aoc_common.engines import Engines
from aoc_common.event_store.mongo import MongoEventStore
from aoc_common.events import CanonicalEvent
from tests.utils.mcp import as_recent, call, error_of, fill, stdio_session
from tests.utils.records import fixture_events

pytestmark = pytest.mark.every_engine_kind  # each store the server reads: SQLite, MongoDB


@pytest.fixture
def events(fixtures_dir: Path) -> list[CanonicalEvent]:
    return as_recent(fixture_events(fixtures_dir))


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


async def test_search_events_filters_pages_and_get_event_returns_the_raw_record(
    store_env: dict[str, str], events: list[CanonicalEvent]
) -> None:
    expected = sorted(
        (e for e in events if e.service == "Entra ID" and e.operation == "Add user"),
        key=lambda e: (e.timestamp, e.id),
        reverse=True,
    )

    async with stdio_session(store_env) as session:
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


async def test_alerts_filter_options_source_health_and_the_summary_are_served(
    store_env: dict[str, str], events: list[CanonicalEvent]
) -> None:
    async with stdio_session(store_env) as session:
        open_high = await call(session, "list_alerts", status="open", severity="high")
        acknowledged = await call(session, "list_alerts", status="acknowledged")
        options = await call(session, "filter_options")
        health = await call(session, "source_health")
        summary = await call(session, "get_summary", days=30, result="failure", top=3)

    assert [a["id"] for a in open_high["items"]] == ["alert-1"]
    failures = [e for e in events if e.result == "failure"]
    assert summary["events"] == len(failures)
    assert summary["by_result"] == [{"value": "failure", "count": len(failures)}]
    top_services = Counter(e.service for e in failures).most_common(3)
    assert [(s["value"], s["count"]) for s in summary["by_service"]] == sorted(
        top_services, key=lambda vc: (-vc[1], vc[0])
    )
    assert set(summary) >= {"start", "end", "by_operation", "by_actor"}
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
    async with stdio_session(store_env) as session:
        for tool, arguments, reason in HOSTILE_CALLS:
            message = await error_of(session, tool, arguments)
            assert reason in message, (tool, arguments, message)
        still = await call(session, "search_events", page_size=1)

    assert len(still["events"]) == 1
