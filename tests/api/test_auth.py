"""API authentication: Entra ID tokens checked against a tenant key set served by a fake identity
provider on 127.0.0.1 (keys generated here), through HTTP against the app."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from jose import jwt
from starlette.routing import Mount

from aoc_api.app import create_app
from aoc_api.auth import JwksCache, TokenVerifier, jwks_url
from aoc_common.event_store.base import EventStore
from aoc_common.query import EventQuery
from tests.utils.asgi import asgi_client
from tests.utils.identity import (
    CLIENT,
    TENANT,
    Clock,
    FakeIdentityProvider,
    SigningKey,
    auth_settings,
    bearer,
    claims,
    open_api,
    sign,
)
from tests.utils.waiting import wait_for


@dataclass
class Api:
    client: httpx.AsyncClient
    app: FastAPI
    clock: Clock
    idp: FakeIdentityProvider
    event_id: str


@pytest.fixture
async def api(idp: FakeIdentityProvider, tmp_path: Path, store: EventStore) -> AsyncIterator[Api]:
    app, clock = await open_api(auth_settings(idp, tmp_path), store, idp)
    event_id = (await store.query_events(EventQuery())).items[0].id
    async with asgi_client(app) as client:
        yield Api(client, app, clock, idp, event_id)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = (
        b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()) if secret else ""
    )
    return f"{signing_input}.{signature}"


async def assert_unauthorized(api: Api, headers: dict[str, str]) -> httpx.Response:
    response = await api.client.get("/api/events", headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["status"] == 401
    return response


# --- who gets in ---------------------------------------------------------------------------------


async def test_a_valid_token_reads_events(api: Api, signing_keys: dict[str, SigningKey]) -> None:
    response = await api.client.get(
        "/api/events", headers=bearer(sign(signing_keys["key-1"], api.idp))
    )
    assert response.status_code == 200
    assert len(response.json()["items"]) == 50


async def test_missing_or_malformed_bearer_is_401(api: Api) -> None:
    await assert_unauthorized(api, {})
    await assert_unauthorized(api, {"Authorization": "Basic YWxpY2U6c2VjcmV0"})
    await assert_unauthorized(api, bearer("not.a.jwt"))
    await assert_unauthorized(api, bearer("garbage"))


async def test_a_token_signed_by_another_key_under_a_published_kid_is_401(
    api: Api, signing_keys: dict[str, SigningKey]
) -> None:
    forged = sign(signing_keys["attacker"], api.idp, kid="key-1")
    response = await assert_unauthorized(api, bearer(forged))
    assert "signature" in response.json()["detail"]


async def test_expired_and_not_yet_valid_tokens_are_401_within_a_small_leeway(
    api: Api, signing_keys: dict[str, SigningKey]
) -> None:
    now = int(time.time())
    key = signing_keys["key-1"]
    expired = await assert_unauthorized(api, bearer(sign(key, api.idp, exp=now - 600)))
    assert "expired" in expired.json()["detail"]
    await assert_unauthorized(api, bearer(sign(key, api.idp, nbf=now + 600)))
    skewed = sign(key, api.idp, exp=now - 30, nbf=now + 30)  # inside the 120 s leeway
    assert (await api.client.get("/api/events", headers=bearer(skewed))).status_code == 200


async def test_a_token_without_expiry_is_401(api: Api, signing_keys: dict[str, SigningKey]) -> None:
    payload = claims()
    del payload["exp"]
    payload["iss"] = payload["iss"].replace("{authority}", api.idp.url)
    token = jwt.encode(
        payload, signing_keys["key-1"].private_pem.decode(), "RS256", headers={"kid": "key-1"}
    )
    await assert_unauthorized(api, bearer(token))


@pytest.mark.parametrize(
    ("claim", "value", "accepted"),
    [
        ("aud", "api://" + CLIENT, True),
        ("aud", [CLIENT, "other"], True),
        ("aud", "00000003-0000-0000-c000-000000000000", False),  # a Graph token
        ("aud", "api://someone-else", False),
        ("iss", f"https://sts.windows.net/{TENANT}/", True),  # v1.0 token
        (
            "iss",
            "https://login.microsoftonline.com/99999999-0000-0000-0000-000000000000/v2.0",
            False,
        ),
        ("iss", "https://evil.example/", False),
        ("tid", "99999999-0000-0000-0000-000000000000", False),
    ],
)
async def test_audience_issuer_and_tenant_must_be_this_api_and_tenant(
    api: Api, signing_keys: dict[str, SigningKey], claim: str, value: Any, accepted: bool
) -> None:
    token = sign(signing_keys["key-1"], api.idp, **{claim: value})
    response = await api.client.get("/api/events", headers=bearer(token))
    assert response.status_code == (200 if accepted else 401), response.text


async def test_alg_none_is_401(api: Api) -> None:
    payload = claims(iss=f"{api.idp.url}/{TENANT}/v2.0")
    token = unsigned_token({"alg": "none", "typ": "JWT", "kid": "key-1"}, payload, None)
    await assert_unauthorized(api, bearer(token))


async def test_hs256_signed_with_the_public_key_is_401(
    api: Api, signing_keys: dict[str, SigningKey]
) -> None:
    payload = claims(iss=f"{api.idp.url}/{TENANT}/v2.0")
    header = {"alg": "HS256", "typ": "JWT", "kid": "key-1"}
    for secret in (
        signing_keys["key-1"].public_pem,
        json.dumps(signing_keys["key-1"].public_jwk).encode(),
    ):
        await assert_unauthorized(api, bearer(unsigned_token(header, payload, secret)))


# --- the key set ---------------------------------------------------------------------------------


async def test_keys_are_cached_for_an_hour(api: Api, signing_keys: dict[str, SigningKey]) -> None:
    token = bearer(sign(signing_keys["key-1"], api.idp))
    for _ in range(3):
        assert (await api.client.get("/api/events", headers=token)).status_code == 200
    assert api.idp.fetches == 1
    api.clock.now += 3601
    # An hour on, the cached key still answers at once while one fetch renews the set.
    assert (await api.client.get("/api/events", headers=token)).status_code == 200
    assert await wait_for(lambda: api.idp.fetches, lambda n: n == 2, timeout_s=10) == 2


async def test_an_unknown_kid_refetches_the_keys_once_so_a_rotated_key_works(
    api: Api, signing_keys: dict[str, SigningKey]
) -> None:
    old = bearer(sign(signing_keys["key-1"], api.idp))
    assert (await api.client.get("/api/events", headers=old)).status_code == 200
    api.idp.keys = [signing_keys["key-1"], signing_keys["key-2"]]  # Entra ID rotates
    api.clock.now += 11
    rotated = bearer(sign(signing_keys["key-2"], api.idp))
    assert (await api.client.get("/api/events", headers=rotated)).status_code == 200
    assert api.idp.fetches == 2
    # Made-up kids right after: answered from the cache, no request per token to the provider.
    for n in range(3):
        await assert_unauthorized(api, bearer(sign(signing_keys["attacker"], api.idp, kid=f"x{n}")))
    assert api.idp.fetches == 2


async def test_an_unreachable_key_set_is_503_not_a_crash(
    api: Api, signing_keys: dict[str, SigningKey]
) -> None:
    api.idp.down = True
    response = await api.client.get(
        "/api/events", headers=bearer(sign(signing_keys["key-1"], api.idp))
    )
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"


# --- forged tokens against a slow or failing key endpoint (issue 12, finding 1) ------------------

VALID_LATENCY_S = 0.5
# No valid request may wait on a key fetch: one that did would wait out the cache's request budget
# (3 s in `stall_api`) or the failing fetch (2.5 s). A shared CI machine can stall any single
# request for a moment — the first valid one shares the event loop with the thirty forged requests
# just sent (0.59 s seen on a fresh CI clone; a test failed once when another process kept a core
# busy) — so the typical one is held to 0.5 s and the slowest to 1.5 s, bounds a request waiting on
# the fetch could not meet. The budget and delays are long enough that five valid requests in a
# row finish before the forged ones are answered, however loaded the machine.
NEVER_WAITED_S = 1.5


def answered_at_once(results: list[tuple[int, float]]) -> bool:
    latencies = sorted(elapsed for _, elapsed in results)
    return latencies[len(latencies) // 2] < VALID_LATENCY_S and latencies[-1] < NEVER_WAITED_S


READ_PATH = "/api/config/features"  # needs a reader, touches no store: the time is the token check


async def timed_get(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[int, float]:
    started = time.perf_counter()
    response = await client.get(READ_PATH, headers=headers)
    return response.status_code, time.perf_counter() - started


@pytest.fixture
async def stall_api(
    idp: FakeIdentityProvider, tmp_path: Path, store: EventStore
) -> AsyncIterator[Api]:
    """An API whose key cache waits at most 3 s per request (the default is 2 s)."""
    settings = auth_settings(idp, tmp_path)
    app = create_app(settings, store=store, message_log=None)
    clock = Clock()
    cache = JwksCache(jwks_url(settings), clock=clock, request_budget_s=3.0, fetch_timeout_s=5.0)
    app.state.token_verifier = TokenVerifier(settings, cache)
    async with asgi_client(app) as client:
        yield Api(client, app, clock, idp, "")
    await cache.aclose()


def forged_tokens(
    signing_keys: dict[str, SigningKey], idp: FakeIdentityProvider, n: int, prefix: str
) -> list[dict[str, str]]:
    return [bearer(sign(signing_keys["attacker"], idp, kid=f"{prefix}-{i}")) for i in range(n)]


async def flood_then_valid(
    api: Api, forged: list[dict[str, str]], valid: dict[str, str]
) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """Send the forged tokens at once; while they wait on the key fetch they caused, send five
    valid requests, one after the other (each timed on its own, so that the figure is the wait
    and not the machine's load). Returns (forged results, valid results)."""
    fetches = api.idp.fetches
    flood = [asyncio.create_task(timed_get(api.client, headers)) for headers in forged]
    await wait_for(lambda: api.idp.fetches, lambda n: n > fetches, timeout_s=10)
    valid_results = [await timed_get(api.client, valid) for _ in range(5)]
    assert not any(task.done() for task in flood)  # the valid ones were served meanwhile
    return await asyncio.gather(*flood), valid_results


async def test_forged_tokens_never_make_valid_requests_wait_on_a_slow_key_endpoint(
    stall_api: Api, signing_keys: dict[str, SigningKey]
) -> None:
    api = stall_api
    valid = bearer(sign(signing_keys["key-1"], api.idp))
    assert (await timed_get(api.client, valid))[0] == 200
    assert api.idp.fetches == 1
    api.idp.delay_s = 4.5  # the key endpoint now takes longer than a request may wait
    api.clock.now += 11  # and a refetch for an unknown kid is due

    forged_results, valid_results = await flood_then_valid(
        api, forged_tokens(signing_keys, api.idp, 30, "slow"), valid
    )

    assert [status for status, _ in valid_results] == [200] * 5
    assert answered_at_once(valid_results), valid_results
    # The forged ones waited for the one fetch, at most the budget each, and were not let in.
    assert {status for status, _ in forged_results} == {503}
    assert max(elapsed for _, elapsed in forged_results) < 8.0  # bounded, not left hanging
    assert api.idp.fetches == 2  # thirty unknown kids, one fetch


async def test_a_failing_key_endpoint_is_asked_once_per_backoff_however_many_forged_tokens(
    stall_api: Api, signing_keys: dict[str, SigningKey]
) -> None:
    api = stall_api
    valid = bearer(sign(signing_keys["key-1"], api.idp))
    assert (await timed_get(api.client, valid))[0] == 200
    api.idp.status, api.idp.delay_s = 503, 2.5  # slow, then failing
    api.clock.now += 11

    forged = forged_tokens(signing_keys, api.idp, 30, "down")
    forged_results, valid_results = await flood_then_valid(api, forged, valid)
    for headers in forged:  # and again, one by one, right after the failure
        assert (await timed_get(api.client, headers))[0] == 503

    assert api.idp.fetches == 2  # not 30, not 90
    assert {status for status, _ in forged_results} == {503}
    assert [status for status, _ in valid_results] == [200] * 5
    assert answered_at_once(valid_results), valid_results
    api.idp.delay_s = 0.0
    # A failed fetch is spaced like a successful one (10 s), then doubled: 20 s after a second.
    api.clock.now += 9
    assert (await timed_get(api.client, forged[0]))[0] == 503
    assert api.idp.fetches == 2
    api.clock.now += 4  # 13 s after the failure: one more attempt, which fails again
    assert (await timed_get(api.client, forged[0]))[0] == 503
    assert api.idp.fetches == 3
    api.clock.now += 15  # less than 20 s after the second failure: still no attempt
    assert (await timed_get(api.client, forged[1]))[0] == 503
    assert api.idp.fetches == 3
    # The endpoint recovers and the next attempt is due: a rotated key is accepted, forged kids
    # are refused (401) and remembered, so they cause no fetch of their own.
    api.idp.status = 200
    api.idp.keys = [signing_keys["key-1"], signing_keys["key-2"]]
    api.clock.now += 30
    rotated = bearer(sign(signing_keys["key-2"], api.idp))
    assert (await timed_get(api.client, rotated))[0] == 200
    assert api.idp.fetches == 4
    api.clock.now += 60
    for headers in forged[:3]:
        assert (await timed_get(api.client, headers))[0] == 401
    assert api.idp.fetches == 5
    api.clock.now += 60
    for headers in forged[:3]:
        assert (await timed_get(api.client, headers))[0] == 401
    assert api.idp.fetches == 5


async def test_an_expired_key_cache_answers_valid_tokens_at_once_while_one_fetch_renews_it(
    stall_api: Api, signing_keys: dict[str, SigningKey]
) -> None:
    api = stall_api
    valid = bearer(sign(signing_keys["key-1"], api.idp))
    assert (await timed_get(api.client, valid))[0] == 200
    api.idp.delay_s = 1.0
    api.clock.now += 3601

    results = [await timed_get(api.client, valid) for _ in range(10)]

    assert [status for status, _ in results] == [200] * 10
    assert answered_at_once(results), results
    assert await wait_for(lambda: api.idp.fetches, lambda n: n == 2, timeout_s=10) == 2


# --- what each caller may do ---------------------------------------------------------------------


async def test_public_endpoints_need_no_token(api: Api) -> None:
    for path in ("/api/config/auth", "/api/version", "/health", "/", "/app.js"):
        assert (await api.client.get(path)).status_code == 200, path
    config = (await api.client.get("/api/config/auth")).json()
    assert config == {
        "enabled": True,
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "authority": f"{api.idp.url}/{TENANT}",
        "scopes": [f"api://{CLIENT}/.default"],
        "writer_roles": ["AOC.Writer"],
    }
    for path in ("/api/config/features", "/api/filter-options", "/api/events/histogram"):
        assert (await api.client.get(path)).status_code == 401, path


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/metrics"])
async def test_docs_openapi_and_metrics_need_a_reader_with_sign_in_on(
    api: Api, signing_keys: dict[str, SigningKey], path: str
) -> None:
    anonymous = await api.client.get(path)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["content-type"] == "application/problem+json"
    reader = bearer(sign(signing_keys["key-1"], api.idp, roles=[]))
    assert (await api.client.get(path, headers=reader)).status_code == 200


async def test_public_api_docs_opens_docs_and_openapi_but_never_metrics(
    idp: FakeIdentityProvider, tmp_path: Path, store: EventStore
) -> None:
    app, _ = await open_api(auth_settings(idp, tmp_path, public_api_docs=True), store, idp)
    async with asgi_client(app) as client:
        assert (await client.get("/docs")).status_code == 200
        spec = await client.get("/openapi.json")
        assert spec.status_code == 200 and "/api/events" in spec.json()["paths"]
        assert (await client.get("/metrics")).status_code == 401


async def test_comment_author_is_the_token_principal(
    api: Api, signing_keys: dict[str, SigningKey]
) -> None:
    token = bearer(sign(signing_keys["key-1"], api.idp, preferred_username="dana@contoso.com"))
    response = await api.client.post(
        f"/api/events/{api.event_id}/comments",
        json={"text": "Checked with Dana's manager", "author": "mallory"},
        headers=token,
    )
    assert response.status_code == 422  # the author is never taken from the body
    response = await api.client.post(
        f"/api/events/{api.event_id}/comments", json={"text": "Checked"}, headers=token
    )
    assert response.status_code == 201
    assert response.json()["comments"][-1]["author"] == "dana@contoso.com"


async def test_writes_need_the_writer_role(api: Api, signing_keys: dict[str, SigningKey]) -> None:
    reader = bearer(sign(signing_keys["key-1"], api.idp, roles=["AOC.Reader"]))
    writer = bearer(sign(signing_keys["key-1"], api.idp, roles=["AOC.Writer"]))
    path = f"/api/events/{api.event_id}/tags"
    assert (await api.client.get("/api/events", headers=reader)).status_code == 200
    denied = await api.client.patch(path, json={"tags": ["x"]}, headers=reader)
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/problem+json"
    assert (await api.client.patch(path, json={"tags": ["x"]}, headers=writer)).status_code == 200


async def test_routes_added_by_other_modules_are_guarded_too(
    api: Api, signing_keys: dict[str, SigningKey]
) -> None:
    router = APIRouter(prefix="/api")

    @router.get("/widgets")
    async def widgets() -> dict[str, str]:
        return {"ok": "read"}

    @router.post("/widgets")
    async def add_widget() -> dict[str, str]:
        return {"ok": "written"}

    api.app.include_router(router)
    # As in app.py, where routers come before the UI's catch-all mount.
    routes = api.app.router.routes
    ui = next(route for route in routes if isinstance(route, Mount) and route.name == "ui")
    routes.remove(ui)
    routes.append(ui)
    reader = bearer(sign(signing_keys["key-1"], api.idp, roles=[]))
    assert (await api.client.get("/api/widgets")).status_code == 401
    assert (await api.client.get("/api/widgets", headers=reader)).status_code == 200
    assert (await api.client.post("/api/widgets", headers=reader)).status_code == 403


@pytest.mark.parametrize(
    ("gate", "token_claims", "read", "write"),
    [
        ({"auth_allowed_roles": ["AOC.Reader"]}, {"roles": []}, 403, 403),
        ({"auth_allowed_roles": ["AOC.Reader"]}, {"roles": ["AOC.Reader"]}, 200, 403),
        ({"auth_allowed_roles": ["AOC.Reader"]}, {"roles": ["AOC.Writer"]}, 200, 200),
        ({"auth_allowed_groups": ["g-soc"]}, {"roles": [], "groups": ["g-other"]}, 403, 403),
        ({"auth_allowed_groups": ["g-soc"]}, {"roles": [], "groups": ["g-soc"]}, 200, 403),
        (
            {"auth_allowed_groups": ["g-soc"], "auth_writer_groups": ["g-leads"]},
            {"roles": [], "groups": ["g-leads"]},
            200,
            200,
        ),
        ({"auth_writer_roles": ["*"]}, {"roles": []}, 200, 200),
    ],
)
async def test_roles_and_groups_gate_reads_and_writes(
    idp: FakeIdentityProvider,
    tmp_path: Path,
    store: EventStore,
    signing_keys: dict[str, SigningKey],
    gate: dict[str, Any],
    token_claims: dict[str, Any],
    read: int,
    write: int,
) -> None:
    app, _ = await open_api(auth_settings(idp, tmp_path, **gate), store, idp)
    token = bearer(sign(signing_keys["key-1"], idp, **token_claims))
    event_id = (await store.query_events(EventQuery())).items[0].id
    async with asgi_client(app) as client:
        assert (await client.get("/api/events", headers=token)).status_code == read
        response = await client.patch(
            f"/api/events/{event_id}/tags", json={"tags": ["t"]}, headers=token
        )
        assert response.status_code == write


async def test_openapi_marks_exactly_the_protected_operations(
    api: Api, signing_keys: dict[str, SigningKey]
) -> None:
    reader = bearer(sign(signing_keys["key-1"], api.idp))
    spec = (await api.client.get("/openapi.json", headers=reader)).json()
    assert spec["components"]["securitySchemes"]["EntraIdBearer"]["scheme"] == "bearer"
    assert spec["paths"]["/api/events"]["get"]["security"] == [{"EntraIdBearer": []}]
    assert "security" not in spec["paths"]["/api/config/auth"]["get"]
    assert "security" not in spec["paths"]["/health"]["get"]


async def test_csp_lets_the_ui_reach_the_authority_only_when_auth_is_on(api: Api) -> None:
    csp = (await api.client.get("/")).headers["content-security-policy"]
    assert f"connect-src 'self' {api.idp.url}" in csp
    assert "script-src 'self';" in csp
