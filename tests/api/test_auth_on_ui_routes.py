"""Sign-in rules on the routes the web UI brings: counting, facets and export are reads (a reader may
export what they may list), alert counts and an alert's events are reads, and acknowledging alerts in
bulk needs a writer, who is recorded as the acknowledger."""

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
READS = [
    "/api/events/count",
    "/api/events/facets?field=service",
    "/api/events/series",
    "/api/events/export?format=csv&limit=5",
    "/api/events/export?format=ndjson&limit=5",
    "/api/alerts/summary",
    f"/api/alerts/{ALERT_ID}/events",
]


@pytest.fixture
async def client(
    idp: FakeIdentityProvider, tmp_path: Path, store: EventStore
) -> AsyncIterator[httpx.AsyncClient]:
    await store.insert_alerts([an_open_alert(ALERT_ID)])
    async with api_client(auth_settings(idp, tmp_path), store, idp) as client:
        yield client


@pytest.mark.parametrize("path", READS)
async def test_the_uis_reads_need_a_reader(
    client: httpx.AsyncClient,
    idp: FakeIdentityProvider,
    signing_keys: dict[str, SigningKey],
    path: str,
) -> None:
    reader = bearer(sign(signing_keys["key-1"], idp, roles=["AOC.Reader"]))
    assert (await client.get(path)).status_code == 401
    answer = await client.get(path, headers=reader)
    assert answer.status_code == 200, answer.text


async def test_acknowledging_in_bulk_needs_a_writer_and_records_who(
    client: httpx.AsyncClient, idp: FakeIdentityProvider, signing_keys: dict[str, SigningKey]
) -> None:
    reader = bearer(sign(signing_keys["key-1"], idp, roles=["AOC.Reader"]))
    writer = bearer(
        sign(
            signing_keys["key-1"],
            idp,
            roles=["AOC.Writer"],
            preferred_username="lead@contoso.com",
        )
    )
    body = {"ids": [ALERT_ID]}
    assert (await client.post("/api/alerts/acknowledge", json=body)).status_code == 401
    refused = await client.post("/api/alerts/acknowledge", json=body, headers=reader)
    assert refused.status_code == 403

    answer = await client.post("/api/alerts/acknowledge", json=body, headers=writer)

    assert answer.status_code == 200, answer.text
    assert [a["acknowledged_by"] for a in answer.json()["acknowledged"]] == ["lead@contoso.com"]
