"""Sign-in rules on the routes the alerter and the collector bring: who may acknowledge an alert,
change a rule, force a fetch or read source health, and why Graph's webhook needs no token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from aoc_common.event_store.base import EventStore
from tests.utils.alerts import an_open_alert
from tests.utils.identity import (
    FakeIdentityProvider,
    SigningKey,
    api_client,
    auth_settings,
    bearer,
    sign,
)

ALERT_ID = "alert-under-auth"
CLIENT_STATE = "graph-subscription-secret"


@pytest.fixture
async def client(
    idp: FakeIdentityProvider, tmp_path: Path, store: EventStore
) -> AsyncIterator[httpx.AsyncClient]:
    await store.insert_alerts([an_open_alert(ALERT_ID)])
    async with api_client(
        auth_settings(idp, tmp_path, graph_webhook_client_state=CLIENT_STATE), store, idp
    ) as client:
        yield client


def tokens(idp: FakeIdentityProvider, keys: dict[str, SigningKey]) -> tuple[dict, dict]:
    reader = bearer(sign(keys["key-1"], idp, roles=["AOC.Reader"]))
    writer = bearer(
        sign(keys["key-1"], idp, roles=["AOC.Writer"], preferred_username="lead@contoso.com")
    )
    return reader, writer


async def test_acknowledging_an_alert_needs_a_writer_and_records_who(
    client: httpx.AsyncClient, idp: FakeIdentityProvider, signing_keys: dict[str, SigningKey]
) -> None:
    reader, writer = tokens(idp, signing_keys)
    path = f"/api/alerts/{ALERT_ID}/acknowledge"
    assert (await client.post(path)).status_code == 401
    assert (await client.post(path, headers=reader)).status_code == 403
    assert (await client.get("/api/alerts", headers=reader)).status_code == 200

    response = await client.post(path, headers=writer)

    assert response.status_code == 200, response.text
    assert response.json()["acknowledged_by"] == "lead@contoso.com"


async def test_changing_rules_needs_a_writer(
    client: httpx.AsyncClient, idp: FakeIdentityProvider, signing_keys: dict[str, SigningKey]
) -> None:
    reader, writer = tokens(idp, signing_keys)
    rule = {
        "name": "Any failed action",
        "severity": "low",
        "match": {"all": [{"field": "result", "op": "equals", "value": "failure"}]},
    }
    assert (await client.get("/api/rules", headers=reader)).status_code == 200
    assert (await client.post("/api/rules", json=rule, headers=reader)).status_code == 403
    created = await client.post("/api/rules", json=rule, headers=writer)
    assert created.status_code == 201, created.text
    rule_path = f"/api/rules/{created.json()['id']}"
    assert (await client.delete(rule_path, headers=reader)).status_code == 403
    assert (await client.delete(rule_path, headers=writer)).status_code in (200, 204)


async def test_forcing_a_fetch_needs_a_writer_although_it_is_a_get(
    client: httpx.AsyncClient, idp: FakeIdentityProvider, signing_keys: dict[str, SigningKey]
) -> None:
    reader, writer = tokens(idp, signing_keys)
    assert (await client.get("/api/source-health")).status_code == 401
    assert (await client.get("/api/source-health", headers=reader)).status_code == 200
    assert (await client.get("/api/fetch-audit-logs?hours=1", headers=reader)).status_code == 403
    # A writer gets through to the collector forwarding, which has no COLLECTOR_URL here.
    forced = await client.get("/api/fetch-audit-logs?hours=1", headers=writer)
    assert forced.status_code == 503, forced.text


async def test_graph_validates_its_webhook_without_a_token_but_only_with_the_client_state(
    client: httpx.AsyncClient,
) -> None:
    validation = await client.post("/api/webhooks/graph?validationToken=Validation%3A+abc")
    assert validation.status_code == 200
    assert validation.headers["content-type"].startswith("text/plain")
    assert validation.text == "Validation: abc"

    forged = {"value": [{"clientState": "guess", "resource": "users/1", "changeType": "updated"}]}
    refused = await client.post("/api/webhooks/graph", json=forged)
    assert refused.status_code in (400, 401, 403), refused.text
