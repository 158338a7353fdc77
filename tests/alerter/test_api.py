"""/api/rules and /api/alerts through HTTP, on a real SQLite store: CRUD, validation as
problem+json, alert filters, paging and acknowledgement."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from aoc_alerter.runtime import seed_default_rules
from aoc_api.app import create_app
from aoc_common.engines import Engines
from aoc_common.event_store.base import EventStore
from aoc_common.rules import Alert
from aoc_common.settings import Settings
from tests.utils.asgi import asgi_client

BASE = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
A_RULE: dict[str, Any] = {
    "name": "Transport rule changed",
    "description": "Mail flow rules can silently redirect mail.",
    "severity": "high",
    "match": {
        "all": [
            {"field": "operation", "op": "in", "value": ["Set-TransportRule", "New-TransportRule"]}
        ],
        "any": [{"field": "raw.Parameters.Value", "op": "regex", "value": "(?i)redirect"}],
    },
    "group_by": "actor_display",
    "threshold": {"count": 3, "window_seconds": 900},
    "suppression_seconds": 3600,
}


def an_alert(
    n: int, *, severity: str = "high", rule_id: str = "default-mass-user-deletion"
) -> Alert:
    return Alert(
        id=f"alert-{n:03d}",
        rule_id=rule_id,
        rule_name="Mass user deletion",
        severity=severity,  # type: ignore[arg-type]
        created_at=BASE + timedelta(minutes=n),
        summary=f"{n} matching events",
        group_value="bob.secops@contoso.com",
        event_ids=[f"event-{n}"],
    )


@pytest.fixture
async def store(engines: Engines) -> EventStore:
    await seed_default_rules(engines.store)
    return engines.store


@pytest.fixture
async def client(
    tmp_path: Path, engines: Engines, store: EventStore
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(data_dir=tmp_path), store=store, message_log=engines.message_log)
    async with asgi_client(app) as client:
        yield client


async def test_rules_lists_the_seeded_defaults_by_name(client: httpx.AsyncClient):
    response = await client.get("/api/rules")

    assert response.status_code == 200
    names = [rule["name"] for rule in response.json()["items"]]
    assert len(names) == 11 and names == sorted(names)
    assert "Mailbox forwarding to an external address" in names


async def test_a_rule_is_created_read_replaced_and_deleted(client: httpx.AsyncClient):
    created = await client.post("/api/rules", json=A_RULE)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["id"].startswith("rule-") and {k: rule[k] for k in A_RULE} == {
        **A_RULE,
        "match": {
            "all": [{**A_RULE["match"]["all"][0], "negate": False, "case_sensitive": False}],
            "any": [{**A_RULE["match"]["any"][0], "negate": False, "case_sensitive": False}],
        },
        "threshold": {**A_RULE["threshold"], "distinct": None},
    }
    assert (await client.get(f"/api/rules/{rule['id']}")).json() == rule

    replaced = await client.put(f"/api/rules/{rule['id']}", json={**A_RULE, "enabled": False})
    assert replaced.status_code == 200 and replaced.json()["enabled"] is False
    assert (await client.get(f"/api/rules/{rule['id']}")).json()["enabled"] is False

    assert (await client.delete(f"/api/rules/{rule['id']}")).status_code == 204
    gone = await client.get(f"/api/rules/{rule['id']}")
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"
    assert (await client.delete(f"/api/rules/{rule['id']}")).status_code == 404
    assert (await client.put(f"/api/rules/{rule['id']}", json=A_RULE)).status_code == 404


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({**A_RULE, "severity": "urgent"}, "severity"),
        ({**A_RULE, "name": ""}, "name"),
        ({**A_RULE, "id": "chosen-by-client"}, "id"),
        (
            {**A_RULE, "match": {"all": [{"field": "x", "op": "regex", "value": "(a"}]}},
            "match.all.0",
        ),
        (
            {**A_RULE, "match": {"all": [{"field": "x", "op": "regex", "value": "a" * 600}]}},
            "match.all.0",
        ),
        (
            {**A_RULE, "match": {"all": [{"field": "x", "op": "matches", "value": "a"}]}},
            "match.all.0.op",
        ),
        ({**A_RULE, "match": {"all": []}}, "match"),
        ({**A_RULE, "group_by": "a..b"}, "group_by"),
        ({**A_RULE, "threshold": {"count": 0, "window_seconds": 60}}, "threshold.count"),
    ],
)
async def test_invalid_rules_are_refused_as_problem_json_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], parameter: str
):
    response = await client.post("/api/rules", json=body)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert any(e["parameter"] == parameter for e in response.json()["errors"]), response.json()


async def test_alerts_page_newest_first_and_filter(client: httpx.AsyncClient, store: EventStore):
    await store.insert_alerts(
        [an_alert(n, severity="critical" if n % 2 else "medium") for n in range(7)]
        + [an_alert(100, rule_id="default-guest-added-to-team")]
    )
    seen: list[str] = []
    cursor = None
    while True:
        params = {"page_size": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/alerts", params=params)).json()
        seen += [alert["id"] for alert in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["alert-100", *[f"alert-{n:03d}" for n in reversed(range(7))]]

    critical = (await client.get("/api/alerts", params={"severity": "critical"})).json()
    assert [a["id"] for a in critical["items"]] == ["alert-005", "alert-003", "alert-001"]
    by_rule = (
        await client.get("/api/alerts", params={"rule_id": "default-guest-added-to-team"})
    ).json()
    assert [a["id"] for a in by_rule["items"]] == ["alert-100"]
    assert set(critical["items"][0]) == {
        "id", "rule_id", "rule_name", "severity", "status", "created_at", "summary",
        "group_value", "event_ids", "acknowledged_by", "acknowledged_at", "event_at",
        "tags", "references", "sigma_id", "level",
    }  # fmt: skip


async def test_acknowledging_an_alert_moves_it_from_open_to_acknowledged(
    client: httpx.AsyncClient, store: EventStore
):
    await store.insert_alerts([an_alert(1), an_alert(2)])

    response = await client.post("/api/alerts/alert-001/acknowledge")

    assert response.status_code == 200
    alert = response.json()
    assert alert["status"] == "acknowledged" and alert["acknowledged_by"] == "anonymous"
    assert alert["acknowledged_at"] is not None
    still_open = (await client.get("/api/alerts", params={"status": "open"})).json()
    assert [a["id"] for a in still_open["items"]] == ["alert-002"]
    acknowledged = (await client.get("/api/alerts", params={"status": "acknowledged"})).json()
    assert acknowledged["items"] == [alert]
    again = await client.post("/api/alerts/alert-001/acknowledge")
    assert again.json() == alert
    missing = await client.post("/api/alerts/nope/acknowledge")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"status": "closed"}, "status"),
        ({"severity": "urgent"}, "severity"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 501}, "page_size"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"sort": "oldest"}, "sort"),
    ],
)
async def test_bad_alert_queries_are_problem_json_naming_the_parameter(
    client: httpx.AsyncClient, params: dict[str, Any], parameter: str
):
    response = await client.get("/api/alerts", params=params)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["parameter"] == parameter


SIGMA_RULE = """\
title: Mailbox forwarding set
id: 9f0c1d2e-3333-4c57-9c3e-5a0e0d6f7a03
tags: [attack.collection, attack.t1114.003]
references: [https://attack.mitre.org/techniques/T1114/003/]
logsource: {product: m365, service: exchange}
detection:
    selection:
        Operation: Set-Mailbox
        Parameters|contains: ForwardingSmtpAddress
    condition: selection
level: high
"""


async def test_sigma_yaml_is_stored_as_a_rule_with_its_metadata_and_refusals_say_why(
    client: httpx.AsyncClient,
):
    yaml_headers = {"Content-Type": "application/yaml"}
    assert (await client.get("/api/rules/sigma/report")).status_code == 404  # no alerter start yet
    created = await client.post("/api/rules/sigma", content=SIGMA_RULE, headers=yaml_headers)

    assert created.status_code == 201, created.text
    [rule] = created.json()["items"]
    assert rule["id"] == "sigma-9f0c1d2e-3333-4c57-9c3e-5a0e0d6f7a03"
    assert (rule["name"], rule["severity"], rule["match"]) == (
        "Mailbox forwarding set",
        "high",
        None,
    )
    assert rule["sigma"]["tags"] == ["attack.collection", "attack.t1114.003"]
    assert rule["sigma"]["logsource"] == "m365/exchange"
    assert (await client.get(f"/api/rules/{rule['id']}")).json() == rule

    unmapped = SIGMA_RULE.replace("Parameters|contains", "eventName")
    refused = await client.post("/api/rules/sigma", content=unmapped, headers=yaml_headers)
    assert refused.status_code == 422
    assert "unmapped field 'eventName'" in refused.json()["detail"]
    not_yaml = await client.post("/api/rules/sigma", json={"title": "x"})
    assert not_yaml.status_code == 415
    stale = {**rule, "sigma": {**rule["sigma"], "yaml": unmapped}}
    stale.pop("id")
    assert (await client.put(f"/api/rules/{rule['id']}", json=stale)).status_code == 422
