"""Export over HTTP: CSV and NDJSON of exactly what `/api/events` lists for the same filters and
order, streamed, bounded, refusing what `/api/events` refuses; spreadsheet formulas are defused."""

from __future__ import annotations

import csv
import io
import json

import httpx
import pytest

from aoc_api.export_formats import CSV_COLUMNS, csv_row
from aoc_common.event_store.base import EventStore
from aoc_common.events import CanonicalEvent
from aoc_common.query import EventQuery
from tests.utils.expected import ADMIN_FIXTURE_EVENTS


async def listed_ids(client: httpx.AsyncClient, query: str) -> list[str]:
    ids: list[str] = []
    cursor = ""
    while True:
        page = (await client.get(f"/api/events?page_size=500&{query}{cursor}")).json()
        ids += [event["id"] for event in page["items"]]
        if not page["next_cursor"]:
            return ids
        cursor = f"&cursor={page['next_cursor']}"


def csv_records(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_csv_holds_every_matching_event_in_the_lists_order_with_a_header(
    client: httpx.AsyncClient,
) -> None:
    query = "service=Exchange&service=Teams&exclude_operation=Set-Mailbox&order=oldest"

    answer = await client.get(f"/api/events/export?format=csv&{query}")

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"].startswith('attachment; filename="aoc-events-')
    assert answer.headers["content-disposition"].endswith('.csv"')
    assert answer.headers["x-export-limit"] == "10000"
    assert answer.text.splitlines()[0] == ",".join(name for name, _ in CSV_COLUMNS)
    records = csv_records(answer.text)
    assert [r["id"] for r in records] == await listed_ids(client, query)
    assert len(records) == 28
    assert {r["service"] for r in records} == {"Exchange", "Teams"}
    assert "Set-Mailbox" not in {r["operation"] for r in records}
    assert [r["timestamp"] for r in records] == sorted(r["timestamp"] for r in records)


async def test_ndjson_lines_are_the_whole_events_as_the_api_serves_them(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/api/events/export?format=ndjson&search=forwarding")

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-ndjson"
    events = [CanonicalEvent.model_validate(json.loads(line)) for line in answer.text.splitlines()]
    assert [e.id for e in events] == await listed_ids(client, "search=forwarding")
    one = (await client.get(f"/api/events/{events[0].id}")).json()
    assert json.loads(answer.text.splitlines()[0]) == one


async def test_an_export_is_bounded_and_pages_through_the_store_beyond_one_page(
    client: httpx.AsyncClient,
) -> None:
    everything = await client.get("/api/events/export?format=ndjson&limit=100000")
    assert len(everything.text.splitlines()) == ADMIN_FIXTURE_EVENTS
    first = await client.get("/api/events/export?format=csv&limit=7")
    assert len(csv_records(first.text)) == 7
    assert first.headers["x-export-limit"] == "7"
    assert [r["id"] for r in csv_records(first.text)] == (await listed_ids(client, ""))[:7]


@pytest.mark.parametrize(
    "query",
    [
        "format=xlsx",
        "limit=0",
        "limit=100001",
        "start=1700000000",
        "start=2026-11-20T00:00:00Z&end=2026-11-19T00:00:00Z",
        "order=sideways",
        "result=maybe",
        "colour=blue",
    ],
)
async def test_an_export_refuses_what_the_event_list_refuses(
    client: httpx.AsyncClient, query: str
) -> None:
    answer = await client.get(f"/api/events/export?{query}")
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


async def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_defused(
    store: EventStore,
) -> None:
    event = (await store.query_events(EventQuery())).items[0]
    hostile = event.model_copy(
        update={
            "actor_display": '=HYPERLINK("http://evil.example","click")',
            "display_summary": "+cmd|' /C calc'!A0",
            "tags": ["@SUM(1+1)"],
        }
    )
    (row,) = csv.reader(io.StringIO(csv_row(hostile)))
    cells = dict(zip((name for name, _ in CSV_COLUMNS), row, strict=True))
    assert cells["actor"] == '\'=HYPERLINK("http://evil.example","click")'
    assert cells["summary"] == "'+cmd|' /C calc'!A0"
    assert cells["tags"] == "'@SUM(1+1)"
    assert cells["service"] == event.service  # ordinary text is left alone
