"""The API's collection endpoints, across processes as deployed: API → HTTP → collector control app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from aoc_api.app import create_app
from aoc_collector.control import create_control_app
from aoc_collector.serving import serve_app
from aoc_common.settings import Settings
from aoc_common.sources import SOURCES
from tests.utils.asgi import asgi_client
from tests.utils.collector import Harness
from tests.utils.expected import UNIQUE_RECORDS

ApiFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def api(harness: Harness, tmp_path: Path) -> ApiFactory:
    """An API client whose collector (with `control_token`) runs behind a real control endpoint."""

    @asynccontextmanager
    async def start(
        *,
        control_token: str | None = None,
        api_token: str | None = None,
        wire_collector: bool = True,
        **settings: Any,
    ) -> AsyncIterator[httpx.AsyncClient]:
        collector = harness.make()
        control = create_control_app(collector, control_token)
        async with serve_app(control) as served:
            api_settings = Settings(
                data_dir=tmp_path,
                collector_url=served.url if wire_collector else None,
                collector_control_token=SecretStr(api_token) if api_token else None,
                **settings,
            )
            app = create_app(api_settings, store=harness.store, message_log=harness.message_log)
            async with asgi_client(app) as client:
                client.collector = collector  # type: ignore[attr-defined]
                yield client
            await collector.wait_idle()

    return start


async def test_source_health_lists_every_source_before_any_run(api: ApiFactory) -> None:
    async with api() as client:
        response = await client.get("/api/source-health")

    assert response.status_code == 200
    assert response.json() == {
        "sources": [
            {
                "source": source,
                "status": "never_run",
                "last_run_at": None,
                "last_success_at": None,
                "last_error": None,
                "last_count": 0,
                "watermark": None,
                "warnings": [],
            }
            for source in SOURCES
        ]
    }


async def test_fetch_audit_logs_collects_through_the_collector_and_health_shows_it(
    api: ApiFactory,
) -> None:
    async with api() as client:
        fetched = await client.get("/api/fetch-audit-logs", params={"hours": 720})
        health = (await client.get("/api/source-health")).json()["sources"]

    assert fetched.status_code == 200, fetched.text
    body = fetched.json()
    assert body["hours"] == 720
    assert body["counts"] == UNIQUE_RECORDS
    assert body["total"] == sum(UNIQUE_RECORDS.values())
    assert any("7 days" in w for w in body["warnings"]["unified"])
    assert [(h["source"], h["status"], h["last_count"]) for h in health] == [
        (source, "ok", count) for source, count in UNIQUE_RECORDS.items()
    ]
    assert all(h["watermark"] and h["last_success_at"] for h in health)


async def test_fetch_hours_are_capped_at_720(api: ApiFactory) -> None:
    async with api() as client:
        response = await client.get("/api/fetch-audit-logs", params={"hours": 5000})

    assert response.status_code == 200
    assert response.json()["hours"] == 720
    assert response.json()["notes"] == ["hours=5000 capped at 720"]


async def test_fetch_hours_below_one_are_a_problem_naming_the_parameter(api: ApiFactory) -> None:
    async with api() as client:
        response = await client.get("/api/fetch-audit-logs", params={"hours": 0})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "hours" in response.json()["detail"]


async def test_fetch_without_collector_url_is_a_clear_503(api: ApiFactory) -> None:
    async with api(wire_collector=False) as client:
        response = await client.get("/api/fetch-audit-logs")

    assert response.status_code == 503
    assert "COLLECTOR_URL" in response.json()["detail"]


async def test_the_control_token_is_required_and_forwarded(api: ApiFactory) -> None:
    async with api(control_token="s3cret-control") as client:
        refused = await client.get("/api/fetch-audit-logs", params={"hours": 1})
    async with api(control_token="s3cret-control", api_token="s3cret-control") as client:
        accepted = await client.get("/api/fetch-audit-logs", params={"hours": 1})

    assert refused.status_code == 502
    assert "HTTP 401" in refused.json()["detail"]
    assert accepted.status_code == 200


async def test_source_health_shows_the_error_text_of_a_failing_source(
    api: ApiFactory, harness: Harness
) -> None:
    harness.fake.unpermitted_scopes.add(f"{harness.fake.management_api_base_url}/.default")

    async with api() as client:
        await client.get("/api/fetch-audit-logs", params={"hours": 24})
        health = {
            h["source"]: h for h in (await client.get("/api/source-health")).json()["sources"]
        }

    assert health["unified"]["status"] == "error"
    assert "AF10001" in health["unified"]["last_error"]
    assert health["unified"]["last_success_at"] is None
    assert health["directory"]["status"] == "ok"


async def test_graph_webhook_echoes_the_validation_token_as_plain_text(api: ApiFactory) -> None:
    async with api(graph_webhook_client_state=SecretStr("expected-state")) as client:
        response = await client.post(
            "/api/webhooks/graph", params={"validationToken": "Validation: token <&> 123"}
        )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "Validation: token <&> 123"


async def test_graph_notification_with_the_right_client_state_fetches_the_source(
    api: ApiFactory, harness: Harness
) -> None:
    notification = {
        "value": [
            {
                "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
                "clientState": "expected-state",
                "changeType": "updated",
                "resource": "deviceManagement/managedDevices/abc",
                "tenantId": harness.fake.tenant_id,
            }
        ]
    }
    async with api(graph_webhook_client_state=SecretStr("expected-state")) as client:
        response = await client.post("/api/webhooks/graph", json=notification)
        await client.collector.wait_idle()  # type: ignore[attr-defined]
        health = {
            h["source"]: h for h in (await client.get("/api/source-health")).json()["sources"]
        }

    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "rejected": 0, "sources": ["intune"]}
    assert health["intune"]["status"] == "ok" and health["intune"]["last_count"] == 30
    assert health["directory"]["status"] == "never_run"


async def test_graph_notification_with_a_wrong_client_state_triggers_nothing(
    api: ApiFactory, harness: Harness
) -> None:
    forged = {"value": [{"clientState": "guess", "resource": "users/1", "changeType": "updated"}]}
    async with api(graph_webhook_client_state=SecretStr("expected-state")) as client:
        response = await client.post("/api/webhooks/graph", json=forged)
        await client.collector.wait_idle()  # type: ignore[attr-defined]

    assert response.status_code == 401
    assert harness.fake.hits("/graph/") == []


async def test_graph_webhook_is_off_until_a_client_state_is_configured(api: ApiFactory) -> None:
    async with api() as client:
        response = await client.post("/api/webhooks/graph", params={"validationToken": "x"})

    assert response.status_code == 503
    assert "GRAPH_WEBHOOK_CLIENT_STATE" in response.json()["detail"]


async def test_graph_webhook_refuses_a_body_that_is_not_a_notification_batch(
    api: ApiFactory,
) -> None:
    async with api(graph_webhook_client_state=SecretStr("expected-state")) as client:
        not_json = await client.post("/api/webhooks/graph", content=b"{oops")
        wrong_shape = await client.post("/api/webhooks/graph", json=[1, 2])

    assert not_json.status_code == 400 and wrong_shape.status_code == 400
