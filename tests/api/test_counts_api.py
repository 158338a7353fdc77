"""Counting over HTTP: the total of matches (exact up to a bound), facets (top values with counts,
filtered in and out), and the per-value series of the overview's stacked chart; each takes exactly
the filters `/api/events` takes."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from tests.utils.expected import ADMIN_FIXTURE_EVENTS


async def test_the_count_is_exact_up_to_the_limit_and_says_when_it_stopped(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/events/count")).json() == {
        "value": ADMIN_FIXTURE_EVENTS,
        "exact": True,
    }
    assert (await client.get("/api/events/count?service=Exchange")).json() == {
        "value": 20,
        "exact": True,
    }
    assert (await client.get("/api/events/count?limit=100")).json() == {
        "value": 100,
        "exact": False,
    }
    excluded = await client.get("/api/events/count?exclude_service=Entra ID&result=failure")
    listed = (
        await client.get("/api/events?exclude_service=Entra ID&result=failure&page_size=500")
    ).json()
    assert excluded.json() == {"value": len(listed["items"]), "exact": True}


async def test_facets_count_the_top_values_of_the_matching_events(
    client: httpx.AsyncClient,
) -> None:
    everything = (await client.get("/api/events?page_size=500")).json()["items"]

    body = (await client.get("/api/events/facets?field=service&field=actor&top=3")).json()

    assert set(body["facets"]) == {"service", "actor"}
    services = Counter(e["service"] for e in everything)
    assert [(f["value"], f["count"]) for f in body["facets"]["service"]] == services.most_common(3)
    assert body["facets"]["actor"][0] == {"value": "alice.admin@contoso.com", "count": 46}
    assert body["complete"] is True and body["counted"] == ADMIN_FIXTURE_EVENTS

    exchange = (await client.get("/api/events/facets?field=operation&service=Exchange")).json()
    assert sum(f["count"] for f in exchange["facets"]["operation"]) == 20
    default = (await client.get("/api/events/facets")).json()
    assert set(default["facets"]) >= {
        "service", "operation", "result", "actor", "category", "source", "tags"
    }  # fmt: skip


async def test_facets_count_the_newest_sample_the_caller_asks_for(
    client: httpx.AsyncClient,
) -> None:
    newest = (await client.get("/api/events?page_size=30")).json()["items"]

    body = (await client.get("/api/events/facets?field=service&sample=30")).json()

    assert body["complete"] is False and body["counted"] == 30
    counted = Counter(e["service"] for e in newest)
    assert {f["value"]: f["count"] for f in body["facets"]["service"]} == dict(counted)
    every = (await client.get(f"/api/events/facets?sample={ADMIN_FIXTURE_EVENTS}")).json()
    assert every["complete"] is True and every["counted"] == ADMIN_FIXTURE_EVENTS


async def test_the_series_split_the_histogram_by_the_fields_top_values(
    client: httpx.AsyncClient,
) -> None:
    body = (await client.get("/api/events/series?field=service&top=3")).json()

    totals = [bucket["count"] for bucket in body["buckets"]]
    assert body["total"] == ADMIN_FIXTURE_EVENTS  # every matching event: the oldest to the newest
    assert [line["value"] for line in body["series"]] == ["Entra ID", "Intune", "Exchange", "Other"]
    assert body["series"][-1]["other"] is True
    for index, total in enumerate(totals):
        assert sum(line["counts"][index] for line in body["series"]) == total
    assert sum(body["series"][2]["counts"]) == 20


@pytest.mark.parametrize(
    "path",
    [
        "/api/events/count?limit=0",
        "/api/events/count?limit=1000001",
        "/api/events/count?colour=blue",
        "/api/events/facets?field=password",
        "/api/events/facets?top=0",
        "/api/events/facets?top=101",
        "/api/events/facets?sample=0",
        "/api/events/facets?sample=10001",
        "/api/events/series?field=raw",
        "/api/events/series?buckets=1000",
        "/api/events/series?start=2026-11-20T00:00:00Z&end=2026-11-19T00:00:00Z",
        # 51 values are refused even when they repeat one value (the bound is on what was sent).
        "/api/events/count?" + "&".join(["exclude_result=failure"] * 51),
    ],
)
async def test_counting_routes_refuse_bad_parameters_by_name(
    client: httpx.AsyncClient, path: str
) -> None:
    answer = await client.get(path)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
