"""The events API through HTTP: paging, filters, lookups and every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from aoc_api.app import create_app
from aoc_common.event_store.mongo import MongoEventStore
from aoc_common.events import SCHEMA_VERSION
from aoc_common.search import query_tokens
from aoc_common.settings import Settings
from tests.utils.asgi import asgi_client
from tests.utils.expected import ADMIN_FIXTURE_EVENTS
from tests.utils.records import load_json


async def all_pages(client: httpx.AsyncClient, **params: str | int) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/events", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_cursor_paging_returns_each_event_once_newest_first(
    client: httpx.AsyncClient,
) -> None:
    items = await all_pages(client, page_size=20)
    ids = [e["id"] for e in items]
    assert len(ids) == ADMIN_FIXTURE_EVENTS
    assert len(set(ids)) == ADMIN_FIXTURE_EVENTS
    keys = [(e["timestamp"], e["id"]) for e in items]
    assert keys == sorted(keys, reverse=True)


async def test_default_page_is_fifty_and_max_page_holds_everything(
    client: httpx.AsyncClient,
) -> None:
    default = (await client.get("/api/events")).json()
    assert len(default["items"]) == 50 and default["next_cursor"]
    everything = (await client.get("/api/events", params={"page_size": 500})).json()
    assert len(everything["items"]) == ADMIN_FIXTURE_EVENTS
    assert everything["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "expected_count", "check"),
    [
        ({"service": "Exchange"}, 20, lambda e: e["service"] == "Exchange"),
        ({"source": "intune"}, 30, lambda e: e["source"] == "intune"),
        # 6 Graph "Add member to role" + 3 Management Activity "Add member to role.": one operation
        ({"operation": "Add member to role"}, 9, lambda e: e["operation"] == "Add member to role"),
        ({"result": "failure", "source": "directory"}, 4, lambda e: e["result"] == "failure"),
        ({"actor": "ALICE.ADMIN"}, None, lambda e: "alice.admin" in e["actor_display"]),
        ({"search": "exfil"}, None, lambda e: "exfil" in e["raw_text"]),
        (
            {"start": "2026-11-14T00:00:00Z", "end": "2026-11-14T23:59:59Z"},
            None,
            lambda e: e["timestamp"].startswith("2026-11-14"),
        ),
    ],
)
async def test_filters_narrow_the_result(
    client: httpx.AsyncClient, params: dict, expected_count: int | None, check
) -> None:
    items = await all_pages(client, page_size=500, **params)
    assert items, params
    assert all(check(e) for e in items), params
    if expected_count is not None:
        assert len(items) == expected_count
    else:
        assert len(items) < ADMIN_FIXTURE_EVENTS


async def test_one_event_with_its_raw_record(client: httpx.AsyncClient) -> None:
    first = (await client.get("/api/events", params={"search": "exfil"})).json()["items"][0]
    response = await client.get(f"/api/events/{first['id']}")
    assert response.status_code == 200
    event = response.json()
    assert event["raw"]["Operation"] in ("Set-Mailbox", "New-InboxRule")
    assert event["id"] == first["id"]


async def test_unknown_event_is_a_problem_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/events/does-not-exist")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


async def test_filter_options_list_what_is_stored(client: httpx.AsyncClient) -> None:
    options = (await client.get("/api/filter-options")).json()
    assert options["services"] == sorted(["Entra ID", "Exchange", "Intune", "SharePoint", "Teams"])
    assert options["sources"] == ["directory", "intune", "unified"]
    assert "Set-Mailbox" in options["operations"]
    # "Add user." (Management Activity) and "Add user" (Graph) are one operation.
    assert options["operations"].count("Add user") == 1
    assert "Add user." not in options["operations"]
    assert set(options["results"]) <= {"success", "failure", "unknown"}
    assert "alice.admin@contoso.com" in options["actors"]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"page_size": 501}, "page_size"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"start": "yesterday"}, "start"),
        ({"start": "2026-11-15T00:00:00Z", "end": "2026-11-14T00:00:00Z"}, "end"),
        ({"source": "exchange"}, "source"),
        ({"search": "x" * 501}, "search"),
        ({"serivce": "Exchange"}, "serivce"),
    ],
)
async def test_bad_parameters_are_a_422_problem_naming_the_parameter(
    client: httpx.AsyncClient, params: dict, parameter: str
) -> None:
    response = await client.get("/api/events", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["title"] == "Invalid request"
    assert parameter in [e["parameter"] for e in body["errors"]]


async def test_hostile_inputs_as_query_strings_match_nothing_and_never_fail(
    client: httpx.AsyncClient, fixtures_dir: Path
) -> None:
    hostile = [
        str(e["payload"])
        for e in load_json(fixtures_dir / "malformed_inputs.json")
        if e["kind"] in ("regex_bomb_search", "nosql_injection_filter")
    ]
    hostile += [".*", "%", "_", "\\", "' OR 1=1 --", '"', "a" * 200, "\u202e\U0001f600"]
    for value in hostile:
        for name in ("actor", "service", "operation"):
            response = await client.get("/api/events", params={name: value})
            assert response.status_code == 200, (name, value, response.text)
            assert response.json()["items"] == [], (name, value)
        # Free text is taken as its words: the punctuation around them is inert, never a pattern.
        words = " ".join(query_tokens(value))
        response = await client.get("/api/events", params={"search": value, "page_size": 500})
        assert response.status_code == 200, (value, response.text)
        found = [e["id"] for e in response.json()["items"]]
        if not words:
            assert found == [], value
        else:
            as_words = await client.get("/api/events", params={"search": words, "page_size": 500})
            assert found == [e["id"] for e in as_words.json()["items"]], value
    bracket = await client.get("/api/events?service[$where]=sleep(1000)")
    assert bracket.status_code == 422


async def test_health_reports_each_engine(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["store"] == {"engine": "embedded", "ok": True, "writable": True}
    assert body["checks"]["message_log"] == {"engine": "embedded", "ok": True}


async def test_health_is_503_when_the_store_is_unreachable(tmp_path: Path) -> None:
    unreachable = MongoEventStore("mongodb://127.0.0.1:9", "aoc", server_selection_timeout_ms=200)
    app = create_app(Settings(data_dir=tmp_path), store=unreachable, message_log=None)
    async with asgi_client(app, raise_app_exceptions=True) as client:
        response = await client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "down"
    assert response.json()["checks"]["store"]["ok"] is False


async def test_version_metrics_ui_and_security_headers(client: httpx.AsyncClient) -> None:
    version = await client.get("/api/version")
    assert version.json()["name"] == "aoc" and version.json()["schema_version"] == SCHEMA_VERSION
    await client.get("/api/events")
    metrics = await client.get("/metrics")
    assert 'aoc_http_requests_total{method="GET",route="/api/events",status="200"}' in metrics.text
    ui = await client.get("/")
    assert ui.status_code == 200 and "Admin Operations Center" in ui.text
    for response in (version, ui):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_cors_allows_only_configured_origins(client: httpx.AsyncClient) -> None:
    allowed = await client.get("/api/version", headers={"Origin": "https://soc.contoso.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://soc.contoso.example"
    denied = await client.get("/api/version", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in denied.headers


async def test_openapi_documents_the_event_filters(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    names = {p["name"] for p in spec["paths"]["/api/events"]["get"]["parameters"]}
    assert {
        "service",
        "actor",
        "operation",
        "result",
        "start",
        "end",
        "search",
        "cursor",
        "page_size",
    } <= names
