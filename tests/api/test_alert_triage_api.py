"""Alert triage over HTTP: counts per status, rule and severity; bulk acknowledgement; an alert's
events in one call. Against the real SQLite store holding the fixture events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from aoc_common.event_store.base import EventStore
from aoc_common.query import EventQuery
from aoc_common.rules import Alert

CREATED = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
pytestmark = pytest.mark.every_engine_kind


def an_alert(alert_id: str, rule_id: str, severity: str, event_ids: list[str]) -> Alert:
    return Alert.model_validate(
        {
            "id": alert_id,
            "rule_id": rule_id,
            "rule_name": f"Rule {rule_id}",
            "severity": severity,
            "created_at": CREATED,
            "summary": f"summary of {alert_id}",
            "event_ids": event_ids,
            "event_at": CREATED - timedelta(days=6),
        }
    )


async def some_alerts(store: EventStore) -> list[str]:
    page = await store.query_events(EventQuery(page_size=3))
    ids = [event.id for event in page.items]
    await store.insert_alerts(
        [
            an_alert("a1", "forwarding", "high", ids[:2]),
            an_alert("a2", "forwarding", "high", ids[2:]),
            an_alert("a3", "mass-delete", "critical", [*ids[:1], "gone-by-retention"]),
            an_alert("a4", "role-added", "low", ids[:1]),
        ]
    )
    return ids


async def test_the_summary_counts_open_and_acknowledged_alerts_per_rule_and_severity(
    client: httpx.AsyncClient, store: EventStore
) -> None:
    await some_alerts(store)
    await client.post("/api/alerts/a2/acknowledge")

    summary = (await client.get("/api/alerts/summary")).json()

    assert (summary["open"], summary["acknowledged"]) == (3, 1)
    assert [(r["rule_id"], r["open"], r["acknowledged"]) for r in summary["by_rule"]] == [
        ("forwarding", 1, 1),
        ("mass-delete", 1, 0),
        ("role-added", 1, 0),
    ]
    assert summary["by_severity"] == [
        {"severity": "critical", "open": 1, "acknowledged": 0},
        {"severity": "high", "open": 1, "acknowledged": 1},
        {"severity": "medium", "open": 0, "acknowledged": 0},
        {"severity": "low", "open": 1, "acknowledged": 0},
    ]
    high = (await client.get("/api/alerts/summary?severity=high")).json()
    assert (high["open"], high["acknowledged"]) == (1, 1)
    assert [r["rule_id"] for r in high["by_rule"]] == ["forwarding"]
    bad = await client.get("/api/alerts/summary?severity=urgent")
    assert bad.status_code == 422


async def test_bulk_acknowledgement_records_the_caller_once_and_names_unknown_ids(
    client: httpx.AsyncClient, store: EventStore
) -> None:
    await some_alerts(store)

    answer = await client.post("/api/alerts/acknowledge", json={"ids": ["a1", "a3", "a1", "nope"]})

    assert answer.status_code == 200
    body = answer.json()
    assert [a["id"] for a in body["acknowledged"]] == ["a1", "a3"]
    assert {a["status"] for a in body["acknowledged"]} == {"acknowledged"}
    assert {a["acknowledged_by"] for a in body["acknowledged"]} == {"anonymous"}
    assert body["missing"] == ["nope"]
    still_open = (await client.get("/api/alerts?status=open")).json()["items"]
    assert sorted(a["id"] for a in still_open) == ["a2", "a4"]


async def test_bulk_acknowledgement_refuses_empty_huge_or_malformed_bodies(
    client: httpx.AsyncClient,
) -> None:
    for body in ({"ids": []}, {"ids": ["x"] * 501}, {"ids": "a1"}, {"ids": ["a" * 101]}, {}):
        answer = await client.post("/api/alerts/acknowledge", json=body)
        assert answer.status_code == 422, body
        assert answer.headers["content-type"].startswith("application/problem+json")


async def test_an_alerts_events_come_with_it_and_ids_no_longer_stored_are_named(
    client: httpx.AsyncClient, store: EventStore
) -> None:
    ids = await some_alerts(store)

    body = (await client.get("/api/alerts/a3/events")).json()

    assert body["alert"]["id"] == "a3"
    assert body["alert"]["event_at"] == "2026-11-19T09:00:00Z"
    assert [event["id"] for event in body["items"]] == ids[:1]
    assert body["missing"] == ["gone-by-retention"]
    assert (await client.get("/api/alerts/nope/events")).status_code == 404
    assert (await client.get(f"/api/alerts/{'x' * 300}/events")).status_code == 404
