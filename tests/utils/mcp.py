"""MCP from the client's side, for the MCP tests: a store holding what every tool reads, `aoc mcp`
over stdio as an assistant launches it, and tool calls that return their structured content."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from aoc_common.event_store.base import EventStore
from aoc_common.events import CanonicalEvent
from aoc_common.rules import Alert
from aoc_common.source_health import SourceHealth, write_source_health

AOC = str(Path(sys.executable).parent / "aoc")
CALL_TIMEOUT_S = 30.0
READ_ONLY_TOOLS = {"search_events", "get_event", "list_alerts", "filter_options", "source_health"}
TOOLS = READ_ONLY_TOOLS | {"get_summary", "ask"}


def as_recent(events: list[CanonicalEvent]) -> list[CanonicalEvent]:
    """The events moved in time so the newest happened an hour ago (their order and spacing
    kept): "the last N days" then holds them whenever the tests run."""
    gap = datetime.now(UTC) - timedelta(hours=1) - max(e.timestamp for e in events)
    shift = timedelta(seconds=int(gap.total_seconds()))  # whole seconds: stored times are ms
    return [e.model_copy(update={"timestamp": e.timestamp + shift}) for e in events]


async def fill(store: EventStore, events: list[CanonicalEvent]) -> None:
    """The events, one open high alert on the first, and a health record of the directory."""
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


@asynccontextmanager
async def stdio_session(env: dict[str, str]) -> AsyncIterator[ClientSession]:
    """`aoc mcp` over stdio with `env` (DATA_DIR at least). A context manager, not a fixture:
    the client's task group must be left in the task that entered it."""
    server = StdioServerParameters(
        command=AOC,
        args=["mcp"],
        env={"RETENTION_DAYS": "3650", "LOG_LEVEL": "WARNING", **env},
        cwd=env["DATA_DIR"],  # no .env of the working copy
    )
    async with (
        stdio_client(server) as (read, write),
        ClientSession(read, write, read_timeout_seconds=CALL_TIMEOUT_S) as session,
    ):
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> Any:
    """The tool's structured content (checked to be what its text says)."""
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None, tool
    assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
    return result.structured_content


async def error_of(session: ClientSession, tool: str, arguments: dict[str, Any]) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error
    return str(result.content[0].text)  # type: ignore[union-attr]
