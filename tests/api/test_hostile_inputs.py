"""Hostile input, row by row (issue 12, finding 2): every request below gets the status its row
names, as a problem+json when it is an error, and never a 500. Dates at and past the bounds,
numbers posing as dates, forged and malformed cursors, sizes, deep nesting, unicode, operator and
query injection, wrong methods.

One API and store for the module (each test is one request, so a fresh store per row cost ~0.2 s
of set-up a row); the only row that changes anything is "an emoji tag is kept" (one event's tags).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from aoc_api.app import create_app
from aoc_common import topics
from aoc_common.event_store.sqlite import SqliteEventStore
from aoc_common.message_log.embedded import EmbeddedMessageLog
from aoc_common.query import Cursor
from aoc_common.settings import Settings
from tests.engines.fixture import RETENTION_DAYS
from tests.utils.asgi import asgi_client
from tests.utils.records import fixture_events


def token(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


DEEP_JSON = "[" * 100_000 + "]" * 100_000
JSON = {"content-type": "application/json"}
A_CURSOR = Cursor(timestamp_ms=1_700_000_000_000, id="x").encode()


class Row(NamedTuple):
    method: str
    path: str
    params: dict[str, Any] | str | None = None
    body: str | bytes | None = None
    status: int = 200
    parameter: str | None = None  # the parameter a 422 must name


ROWS: dict[str, Row] = {
    # --- dates ----------------------------------------------------------------------------------
    "histogram from year 1": Row(
        "GET", "/api/events/histogram", {"start": "0001-01-01"}, status=422, parameter="start"
    ),
    "end in year 9999 at -14:00": Row(
        "GET", "/api/events", {"end": "9999-12-31T23:59:59-14:00"}, status=422, parameter="end"
    ),
    "epoch seconds as a date": Row(
        "GET", "/api/events", {"start": "1700000000"}, status=422, parameter="start"
    ),
    "a fraction as a date": Row(
        "GET", "/api/events", {"start": "0.5"}, status=422, parameter="start"
    ),
    "scientific notation": Row(
        "GET", "/api/events", {"start": "1e10"}, status=422, parameter="start"
    ),
    "NaN as a date": Row("GET", "/api/events", {"end": "NaN"}, status=422, parameter="end"),
    "an empty date": Row("GET", "/api/events", {"start": ""}, status=422, parameter="start"),
    "the 30th of February": Row(
        "GET", "/api/events", {"start": "2026-02-30"}, status=422, parameter="start"
    ),
    "an offset past a day": Row(
        "GET", "/api/events", {"start": "2026-11-29T08:00:00+25:00"}, status=422, parameter="start"
    ),
    "1969 in any zone": Row(
        "GET", "/api/events", {"start": "1969-12-31T23:00:00-02:00"}, status=422, parameter="start"
    ),
    "end before start": Row(
        "GET",
        "/api/events",
        {"start": "2026-11-15", "end": "2026-11-14"},
        status=422,
        parameter="end",
    ),
    "first bound day, east of UTC": Row(
        "GET", "/api/events", {"start": "1970-01-01T00:00:00+14:00"}
    ),
    "last bound day, west of UTC": Row("GET", "/api/events", {"end": "2999-12-31T23:59:59-12:00"}),
    "histogram over the whole range": Row(
        "GET",
        "/api/events/histogram",
        {"start": "1970-01-01", "end": "2999-12-31T23:59:59-14:00", "buckets": 200},
    ),
    "histogram ending at the epoch": Row(
        "GET", "/api/events/histogram", {"end": "1970-01-01T00:00:00Z", "buckets": 1}
    ),
    "histogram of one instant": Row(
        "GET",
        "/api/events/histogram",
        {"start": "2026-11-14T00:00:00Z", "end": "2026-11-14T00:00:00Z"},
    ),
    # --- cursors --------------------------------------------------------------------------------
    "not a cursor": Row(
        "GET", "/api/events", {"cursor": "not-a-cursor"}, status=422, parameter="cursor"
    ),
    "padding only": Row("GET", "/api/events", {"cursor": "===="}, status=422, parameter="cursor"),
    "a 10 kB cursor": Row(
        "GET", "/api/events", {"cursor": "A" * 10_000}, status=422, parameter="cursor"
    ),
    "a cursor of an object": Row(
        "GET", "/api/events", {"cursor": token(b"{}")}, status=422, parameter="cursor"
    ),
    "a cursor past 64 bits": Row(
        "GET",
        "/api/events",
        {"cursor": token(b'[99999999999999999999999,"x"]')},
        status=422,
        parameter="cursor",
    ),
    "a cursor in year 10000": Row(
        "GET",
        "/api/events",
        {"cursor": token(b'[253402300800000,"x"]')},
        status=422,
        parameter="cursor",
    ),
    "a cursor of infinity": Row(
        "GET", "/api/events", {"cursor": token(b'[1e400,"x"]')}, status=422, parameter="cursor"
    ),
    "a cursor nested deep": Row(
        "GET",
        "/api/events",
        {"cursor": token(b"[" * 5000 + b"]" * 5000)},
        status=422,
        parameter="cursor",
    ),
    "a cursor with fields swapped": Row(
        "GET", "/api/events", {"cursor": token(b'["x",1]')}, status=422, parameter="cursor"
    ),
    "an alert cursor that is not one": Row(
        "GET", "/api/alerts", {"cursor": "%%%"}, status=422, parameter="cursor"
    ),
    "a well-made cursor": Row("GET", "/api/events", {"cursor": A_CURSOR}),
    # --- sizes ----------------------------------------------------------------------------------
    "page of zero": Row("GET", "/api/events", {"page_size": 0}, status=422, parameter="page_size"),
    "page of 10^30": Row(
        "GET", "/api/events", {"page_size": 10**30}, status=422, parameter="page_size"
    ),
    "page as a float": Row(
        "GET", "/api/events", {"page_size": "1e3"}, status=422, parameter="page_size"
    ),
    "negative alert page": Row(
        "GET", "/api/alerts", {"page_size": -1}, status=422, parameter="page_size"
    ),
    "201 histogram buckets": Row(
        "GET", "/api/events/histogram", {"buckets": 201}, status=422, parameter="buckets"
    ),
    "10^20 histogram buckets": Row(
        "GET", "/api/events/histogram", {"buckets": 10**20}, status=422, parameter="buckets"
    ),
    "search of 501 characters": Row(
        "GET", "/api/events", {"search": "x" * 501}, status=422, parameter="search"
    ),
    "eleven tags": Row(
        "GET", "/api/events", [("tags", str(n)) for n in range(11)], status=422, parameter="tags"
    ),  # type: ignore[arg-type]
    "a tag of 101 characters": Row(
        "GET", "/api/events", {"tags": "t" * 101}, status=422, parameter="tags"
    ),
    "a rule id of 10 kB": Row(
        "GET", "/api/alerts", {"rule_id": "r" * 10_000}, status=422, parameter="rule_id"
    ),
    "an event id of 50 kB": Row("GET", "/api/events/" + "e" * 50_000, status=404),
    "a comment of 2001 characters": Row(
        "POST",
        "/api/events/{event}/comments",
        body=json.dumps({"text": "c" * 2001}),
        status=422,
        parameter="text",
    ),
    "21 tags on an event": Row(
        "PATCH",
        "/api/events/{event}/tags",
        body=json.dumps({"tags": [str(n) for n in range(21)]}),
        status=422,
        parameter="tags",
    ),
    "a body over 1 MiB": Row(
        "POST",
        "/api/events/{event}/comments",
        body=json.dumps({"text": "c" * 1_100_000}),
        status=413,
    ),
    # --- nesting and malformed bodies -------------------------------------------------------------
    "JSON nested 100 000 deep": Row(
        "PATCH", "/api/events/{event}/tags", body='{"tags": ' + DEEP_JSON + "}", status=400
    ),
    "a rule nested 100 000 deep": Row("POST", "/api/rules", body=DEEP_JSON, status=400),
    "not JSON at all": Row("POST", "/api/events/{event}/comments", body=b"\xff\xfe{", status=400),
    "tags as an object": Row(
        "PATCH",
        "/api/events/{event}/tags",
        body='{"tags": {"$ne": null}}',
        status=422,
        parameter="tags",
    ),
    "an author smuggled in": Row(
        "POST",
        "/api/events/{event}/comments",
        body='{"text": "x", "author": "mallory"}',
        status=422,
        parameter="author",
    ),
    "a rule number past 64 bits": Row(
        "POST",
        "/api/rules",
        body='{"name": "n", "match": {"all": [{"field": "operation", "op": "equals", "value": 99999999999999999999999}]}}',
        status=422,
        parameter="match.all.0",
    ),
    "a rule number that is NaN": Row(
        "POST",
        "/api/rules",
        body='{"name": "n", "match": {"all": [{"field": "operation", "op": "equals", "value": NaN}]}}',
        status=422,
        parameter="match.all.0",
    ),
    "a rule switch that is a string": Row(
        "POST",
        "/api/rules",
        body='{"name": "n", "enabled": "yes", "match": {"all": [{"field": "operation", "op": "exists"}]}}',
        status=422,
        parameter="enabled",
    ),
    "a rule with no condition": Row(
        "POST",
        "/api/rules",
        body='{"name": "n", "match": {"all": [], "any": []}}',
        status=422,
        parameter="match",
    ),
    "a rule path with a keyless selector": Row(
        "POST",
        "/api/rules",
        body='{"name": "n", "match": {"all": [{"field": "raw.Parameters[ =x]", "op": "exists"}]}}',
        status=422,
        parameter="match.all.0.field",
    ),
    "a rule regex that does not compile": Row(
        "POST",
        "/api/rules",
        body='{"name": "n", "match": {"all": [{"field": "operation", "op": "regex", "value": "(("}]}}',
        status=422,
        parameter="match.all.0",
    ),
    # --- unicode --------------------------------------------------------------------------------
    "a lone surrogate in a comment": Row(
        "POST",
        "/api/events/{event}/comments",
        body=b'{"text": "a\\ud800b"}',
        status=422,
        parameter="text",
    ),
    "a lone surrogate in a tag": Row(
        "PATCH",
        "/api/events/{event}/tags",
        body=b'{"tags": ["\\udfff"]}',
        status=422,
        parameter="tags.0",
    ),
    "a NUL in a tag": Row(
        "PATCH",
        "/api/events/{event}/tags",
        body=b'{"tags": ["a\\u0000b"]}',
        status=422,
        parameter="tags.0",
    ),
    "an escape sequence in a comment": Row(
        "POST",
        "/api/events/{event}/comments",
        body=b'{"text": "\\u001b[31mred"}',
        status=422,
        parameter="text",
    ),
    "a blank comment": Row(
        "POST",
        "/api/events/{event}/comments",
        body=b'{"text": " \\n\\t "}',
        status=422,
        parameter="text",
    ),
    "overlong UTF-8 in a query": Row("GET", "/api/events", "search=%C0%AF%C0%AE", status=200),
    "a surrogate as UTF-8 in a query": Row("GET", "/api/events", "actor=%ED%A0%80", status=200),
    "right-to-left override and emoji": Row(
        "GET", "/api/events", {"actor": "\u202eevil\U0001f600"}
    ),
    "zero-width joiners": Row("GET", "/api/events", {"service": "Ex\u200dchange"}),
    "a NUL byte in a filter": Row("GET", "/api/events", "operation=a%00b", status=200),
    "an event id of unicode": Row("GET", "/api/events/%F0%9F%98%80%E2%80%AE", status=404),
    "an emoji tag is kept": Row(
        "PATCH", "/api/events/{event}/tags", body=json.dumps({"tags": ["\U0001f525 hot"]})
    ),
    # --- operator and query injection -------------------------------------------------------------
    "a Mongo operator as a value": Row("GET", "/api/events", {"service": '{"$ne": null}'}),
    "a $where clause": Row("GET", "/api/events", {"actor": "'; return true; var x='"}),
    "bracketed operator parameters": Row(
        "GET", "/api/events", "service[$ne]=x", status=422, parameter="service[$ne]"
    ),
    "PHP-style arrays": Row("GET", "/api/events", "tags[]=a", status=422, parameter="tags[]"),
    "SQL in a filter": Row("GET", "/api/events", {"operation": "x' OR '1'='1' --"}),
    "FTS5 syntax in a search": Row("GET", "/api/events", {"search": 'NEAR("a" "b") OR * AND "'}),
    "a regex bomb in a search": Row("GET", "/api/events", {"search": "(a+)+$" * 50}),
    "LIKE wildcards as an actor": Row("GET", "/api/events", {"actor": "%_%"}),
    "an unknown parameter": Row("GET", "/api/events", {"limit": 10}, status=422, parameter="limit"),
    "an unknown alert parameter": Row(
        "GET", "/api/alerts", {"sort": "desc"}, status=422, parameter="sort"
    ),
    "an unknown histogram parameter": Row(
        "GET", "/api/events/histogram", {"page_size": 5}, status=422, parameter="page_size"
    ),
    "an unknown source": Row(
        "GET", "/api/events", {"source": "exchange"}, status=422, parameter="source"
    ),
    "51 services at once": Row(
        "GET",
        "/api/events",
        [("service", str(n)) for n in range(51)],
        status=422,
        parameter="service",  # type: ignore[arg-type]
    ),
    "an unknown order": Row(
        "GET", "/api/events", {"order": "sideways"}, status=422, parameter="order"
    ),
    "a newest-first cursor for oldest-first pages": Row(
        "GET", "/api/events", {"cursor": A_CURSOR, "order": "oldest"}, status=422
    ),
    "an unknown actor type to leave out": Row(
        "GET",
        "/api/events",
        {"exclude_actor_type": "robot"},
        status=422,
        parameter="exclude_actor_type",
    ),
    "an unknown result": Row(
        "GET", "/api/events", {"result": "maybe"}, status=422, parameter="result"
    ),
    # --- methods --------------------------------------------------------------------------------
    "GET on a POST-only route": Row("GET", "/api/ask", status=405),
    "DELETE on a list": Row("DELETE", "/api/events", status=405),
    "PUT on health": Row("PUT", "/health", status=405),
    "POST to a UI file": Row("POST", "/index.html", status=405),
    "an unknown API path": Row("GET", "/api/nope", status=404),
    "OPTIONS on rules": Row("OPTIONS", "/api/rules", status=204),
}


@pytest.fixture(scope="module")
async def client(
    tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The API on the embedded engines holding every fixture event, as tests/api/conftest.py's
    `client`, for the whole module."""
    data_dir = tmp_path_factory.mktemp("hostile-inputs")
    message_log = EmbeddedMessageLog(data_dir / "log.sqlite3")
    store = SqliteEventStore(data_dir / "events.sqlite3", retention_days=RETENTION_DAYS)
    await message_log.start()
    await store.start()
    try:
        await message_log.ensure_topics(topics.ALL_TOPICS)
        await store.upsert_events(fixture_events(fixtures_dir))
        settings = Settings(data_dir=data_dir, cors_origins=["https://soc.contoso.example"])
        app = create_app(settings, store=store, message_log=message_log)
        async with asgi_client(app) as client:
            yield client
    finally:
        await store.stop()
        await message_log.stop()


@pytest.fixture(scope="module")
async def event_id(client: httpx.AsyncClient) -> str:
    page = (await client.get("/api/events", params={"page_size": 1})).json()
    return str(page["items"][0]["id"])


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
async def test_hostile_input_gets_its_expected_status(
    client: httpx.AsyncClient, event_id: str, row: Row
) -> None:
    path = row.path.replace("{event}", event_id)
    response = await client.request(
        row.method,
        path,
        params=row.params,  # type: ignore[arg-type]
        content=row.body,
        headers=JSON if row.body is not None else None,
    )

    assert response.status_code == row.status, response.text[:500]
    if row.status >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == row.status
    if row.parameter is not None:
        assert row.parameter in [e["parameter"] for e in response.json()["errors"]]
    if row.status == 405:
        assert response.headers["allow"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/api/rules", "GET, HEAD, POST, OPTIONS"),
        ("OPTIONS", "/api/rules/some-rule", "GET, HEAD, PUT, DELETE, OPTIONS"),
        ("OPTIONS", "/api/events/some-event/tags", "PATCH, OPTIONS"),
        ("GET", "/api/ask", "POST, OPTIONS"),
        ("GET", "/api/alerts/a/acknowledge", "POST, OPTIONS"),
        ("PUT", "/health", "GET, HEAD, OPTIONS"),
        ("POST", "/docs", "GET, HEAD, OPTIONS"),
        ("POST", "/index.html", "GET, HEAD, OPTIONS"),
    ],
)
async def test_allow_names_every_method_of_the_path_and_not_the_ui_files(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)

    assert response.status_code == (204 if method == "OPTIONS" else 405)
    assert response.headers["allow"] == allow


async def test_cors_preflight_is_still_answered_by_cors(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/rules",
        headers={
            "Origin": "https://soc.contoso.example",
            "Access-Control-Request-Method": "POST",
        },
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://soc.contoso.example"
