"""Tags, comments, the events-over-time histogram and the UI's configuration, through HTTP."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.utils.expected import ADMIN_FIXTURE_EVENTS
from tests.utils.records import malformed_inputs


async def first_event_id(client: httpx.AsyncClient, **params: str) -> str:
    return (await client.get("/api/events", params=params)).json()["items"][0]["id"]


async def test_tags_replace_the_set_and_become_filters_and_options_at_once(
    client: httpx.AsyncClient,
) -> None:
    event_id = await first_event_id(client, search="exfil")
    await client.get("/api/filter-options")  # warm the short-lived cache
    response = await client.patch(
        f"/api/events/{event_id}/tags", json={"tags": [" triage ", "vip", "triage"]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["tags"] == ["triage", "vip"]
    tagged = (await client.get("/api/events", params={"tags": ["vip", "triage"]})).json()
    assert [e["id"] for e in tagged["items"]] == [event_id]
    assert (await client.get("/api/filter-options")).json()["tags"] == ["triage", "vip"]
    cleared = await client.patch(f"/api/events/{event_id}/tags", json={"tags": []})
    assert cleared.json()["tags"] == []
    assert (await client.get("/api/events", params={"tags": "vip"})).json()["items"] == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"tags": "vip"},
        {"tags": [""]},
        {"tags": ["   "]},
        {"tags": ["x" * 51]},
        {"tags": ["bad\u0000tag"]},
        {"tags": [f"t{n}" for n in range(21)]},
        {"tags": [{"$set": 1}]},
        {"tags": ["ok"], "extra": 1},
    ],
)
async def test_bad_tags_are_a_422_problem(client: httpx.AsyncClient, body: dict) -> None:
    event_id = await first_event_id(client)
    response = await client.patch(f"/api/events/{event_id}/tags", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_body_that_is_not_json_is_a_422_problem(client: httpx.AsyncClient) -> None:
    event_id = await first_event_id(client)
    response = await client.patch(
        f"/api/events/{event_id}/tags",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_comments_append_with_the_anonymous_author_when_auth_is_off(
    client: httpx.AsyncClient,
) -> None:
    event_id = await first_event_id(client)
    for text in ("First look: expected change", "  Closed  "):
        response = await client.post(f"/api/events/{event_id}/comments", json={"text": text})
        assert response.status_code == 201, response.text
    comments = (await client.get(f"/api/events/{event_id}")).json()["comments"]
    assert [c["text"] for c in comments] == ["First look: expected change", "Closed"]
    assert {c["author"] for c in comments} == {"anonymous"}
    assert all(c["created_at"].endswith("Z") for c in comments)


@pytest.mark.parametrize(
    "body", [{}, {"text": ""}, {"text": "   "}, {"text": "x" * 2001}, {"text": "a\u0000b"}]
)
async def test_bad_comments_are_a_422_problem(client: httpx.AsyncClient, body: dict) -> None:
    event_id = await first_event_id(client)
    response = await client.post(f"/api/events/{event_id}/comments", json=body)
    assert response.status_code == 422, response.text


async def test_notes_on_an_unknown_event_are_a_404_problem(client: httpx.AsyncClient) -> None:
    for path, method, body in (
        ("/api/events/nope/tags", "PATCH", {"tags": ["x"]}),
        ("/api/events/nope/comments", "POST", {"text": "x"}),
        (f"/api/events/{'x' * 300}/comments", "POST", {"text": "x"}),
    ):
        response = await client.request(method, path, json=body)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"


async def test_histogram_counts_every_matching_event_in_round_intervals(
    client: httpx.AsyncClient,
) -> None:
    everything = (
        await client.get(
            "/api/events/histogram",
            params={"start": "2026-01-01T00:00:00Z", "end": "2026-12-31T23:59:59Z"},
        )
    ).json()
    assert everything["total"] == ADMIN_FIXTURE_EVENTS
    assert len(everything["buckets"]) <= 48
    assert everything["interval_seconds"] in (7 * 86400, 30 * 86400)
    exchange = (await client.get("/api/events/histogram", params={"service": "Exchange"})).json()
    assert exchange["total"] == 20  # the default window: the week up to the newest match
    assert sum(b["count"] for b in exchange["buckets"]) == 20
    starts = [b["start"] for b in exchange["buckets"]]
    assert starts == sorted(starts) and exchange["end"] > starts[-1]


async def test_histogram_parameters_are_validated(client: httpx.AsyncClient) -> None:
    for params in ({"buckets": 0}, {"buckets": 201}, {"cursor": "x"}, {"start": "soon"}):
        response = await client.get("/api/events/histogram", params=params)
        assert response.status_code == 422, params
    nothing = await client.get("/api/events/histogram", params={"search": ".*"})
    assert nothing.status_code == 200 and nothing.json()["total"] == 0


async def test_histogram_and_search_answer_hostile_inputs_quickly(
    client: httpx.AsyncClient,
) -> None:
    started = time.monotonic()
    for value in ("(a+)+$", "'; DROP TABLE events; --", "{'$gt': ''}", "\\" * 150, "%" * 150):
        for name in ("search", "actor", "service"):
            response = await client.get("/api/events/histogram", params={name: value})
            assert response.status_code == 200, (name, value)
    assert time.monotonic() - started < 5


async def test_auth_config_and_features_describe_a_server_without_sign_in(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/config/auth")).json() == {
        "enabled": False,
        "tenant_id": None,
        "client_id": None,
        "authority": None,
        "scopes": [],
        "writer_roles": [],
    }
    features = (await client.get("/api/config/features")).json()
    assert features == {
        "auth": False,
        "alerts": True,
        "ai": False,
        "siem": False,
        "periodic_fetch": False,
        "ai_features_enabled": False,
        "ai_explain": False,
        "fetch_interval_minutes": 60,
    }


async def test_every_response_carries_the_security_headers(client: httpx.AsyncClient) -> None:
    for path in ("/", "/app.js", "/api/events", "/api/nope", "/health"):
        headers = (await client.get(path)).headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["x-frame-options"] == "DENY", path
        assert "default-src 'self'" in headers["content-security-policy"], path
        assert "connect-src 'self';" in headers["content-security-policy"], path
        assert headers["referrer-policy"] == "no-referrer", path
    assert (await client.get("/api/events")).headers["cache-control"] == "no-store"


async def test_cors_preflight_for_a_write_from_an_allowed_origin(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/events/x/tags",
        headers={
            "Origin": "https://soc.contoso.example",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://soc.contoso.example"
    assert "PATCH" in response.headers["access-control-allow-methods"]


async def test_openapi_documents_every_endpoint(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert {
        ("/api/events", "get"),
        ("/api/events/{event_id}", "get"),
        ("/api/events/{event_id}/tags", "patch"),
        ("/api/events/{event_id}/comments", "post"),
        ("/api/events/histogram", "get"),
        ("/api/filter-options", "get"),
        ("/api/config/auth", "get"),
        ("/api/config/features", "get"),
        ("/api/version", "get"),
        ("/health", "get"),
    } <= {(path, method) for path, ops in spec["paths"].items() for method in ops}
    tags_body = spec["paths"]["/api/events/{event_id}/tags"]["patch"]["requestBody"]
    assert tags_body["required"] is True


async def test_openapi_says_errors_are_problem_json(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if code.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/problem+json"], (path, method)
    assert "404" in spec["paths"]["/api/events/{event_id}"]["get"]["responses"]
    assert "Problem" in spec["components"]["schemas"]
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "/vendor/swagger-ui/swagger-ui-bundle.js" in docs.text


async def test_every_hostile_input_as_an_id_tag_comment_or_filter_is_answered_without_a_5xx(
    client: httpx.AsyncClient, fixtures_dir: Path
) -> None:
    """malformed_inputs.json, each payload as text, in every place a user can put text."""
    values = [
        e["payload"] if isinstance(e["payload"], str) else json.dumps(e["payload"])[:5000]
        for e in malformed_inputs(fixtures_dir)
    ]
    event_id = await first_event_id(client)
    started = time.monotonic()
    for value in values:
        for name in ("search", "actor", "service", "operation", "result", "tags", "source"):
            for path in ("/api/events", "/api/events/histogram"):
                response = await client.get(path, params={name: value})
                assert response.status_code in (200, 422), (path, name, value[:80])
        for method, path, body in (
            ("GET", f"/api/events/{quote(value, safe='')}", None),
            ("PATCH", f"/api/events/{quote(value, safe='')}/tags", {"tags": ["x"]}),
            ("PATCH", f"/api/events/{event_id}/tags", {"tags": [value]}),
            ("POST", f"/api/events/{event_id}/comments", {"text": value}),
        ):
            response = await client.request(method, path, json=body)
            assert response.status_code < 500, (method, path[:80], response.text[:200])
            assert response.headers["content-type"].startswith(
                ("application/json", "application/problem+json")
            )
    assert time.monotonic() - started < 20
