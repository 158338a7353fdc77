"""EntraTokenProvider: msal against the local token endpoint over TLS, every request via http_retry."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from aoc_collector.fake_microsoft import FakeMicrosoft, Fault
from aoc_common.entra_auth import EntraAuthError, EntraTokenProvider, TokenProvider, default_scope
from aoc_common.http_retry import RetryPolicy
from tests.utils.collector import RecordedSleep

FakeServer = tuple[FakeMicrosoft, str, httpx.AsyncClient]


def provider(
    fake_server: FakeServer, sleep: RecordedSleep | None = None, **overrides: object
) -> EntraTokenProvider:
    fake, base_url, http = fake_server
    values: dict[str, object] = {
        "tenant_id": fake.tenant_id,
        "client_id": fake.client_id,
        "client_secret": SecretStr(fake.client_secret),
        "authority_host": base_url,
        **overrides,
    }
    return EntraTokenProvider(
        http=http,
        policy=RetryPolicy(max_attempts=3, base_delay_s=0.01),
        sleep=sleep or RecordedSleep(),
        **values,  # type: ignore[arg-type]
    )


async def test_tokens_are_cached_per_scope_until_invalidated(fake_server: FakeServer) -> None:
    fake = fake_server[0]
    tokens: TokenProvider = provider(fake_server)
    graph = default_scope(fake.graph_base_url)
    management = default_scope(fake.management_api_base_url)

    first = await tokens.token(graph)
    assert await tokens.token(graph) == first
    other = await tokens.token(management)
    assert other != first and fake.tokens_issued == 2

    tokens.invalidate(graph)
    renewed = await tokens.token(graph)

    assert renewed != first
    assert await tokens.token(management) == other  # invalidating one scope keeps the other
    assert fake.tokens_issued == 3
    discovery = fake.hits("/.well-known/openid-configuration")
    assert len(discovery) == 1  # tenant discovery once, against AUTHORITY_HOST itself


async def test_a_throttled_token_endpoint_is_retried_after_its_retry_after(
    fake_server: FakeServer,
) -> None:
    fake = fake_server[0]
    fake.inject(Fault(match="/oauth2/v2.0/token", status=429, retry_after=11))
    sleep = RecordedSleep()

    token = await provider(fake_server, sleep).token(default_scope(fake.graph_base_url))

    assert token.startswith("fake-")
    assert sleep.waits == [11.0]


async def test_a_wrong_secret_is_a_clear_error_that_never_shows_the_secret(
    fake_server: FakeServer,
) -> None:
    fake = fake_server[0]
    with pytest.raises(EntraAuthError) as raised:
        await provider(fake_server, client_secret=SecretStr("hunter2")).token(
            default_scope(fake.graph_base_url)
        )

    message = str(raised.value)
    assert "invalid_client: AADSTS7000215" in message
    assert "hunter2" not in message and "\n" not in message


async def test_an_unknown_tenant_fails_at_discovery_with_the_authority_named(
    fake_server: FakeServer,
) -> None:
    fake, base_url, _ = fake_server
    with pytest.raises(EntraAuthError) as raised:
        await provider(fake_server, tenant_id="not-our-tenant").token(
            default_scope(fake.graph_base_url)
        )

    assert f"{base_url}/not-our-tenant" in str(raised.value)


async def test_missing_credentials_are_named_without_calling_anyone(
    fake_server: FakeServer,
) -> None:
    fake = fake_server[0]
    with pytest.raises(EntraAuthError, match="set CLIENT_ID, CLIENT_SECRET"):
        await provider(fake_server, client_id=None, client_secret=None).token("x/.default")

    assert fake.requests == []


async def test_an_unreachable_authority_is_an_error_after_retries(
    fake_server: FakeServer,
) -> None:
    sleep = RecordedSleep()
    with pytest.raises(EntraAuthError, match="unreachable"):
        await provider(fake_server, sleep, authority_host="https://127.0.0.1:9").token(
            "https://graph.microsoft.com/.default"
        )

    assert len(sleep.waits) == 2  # three attempts, backoff between them


def test_the_default_scope_follows_the_configured_cloud() -> None:
    assert default_scope("https://graph.microsoft.us/") == "https://graph.microsoft.us/.default"
    assert default_scope("https://manage.office.com") == "https://manage.office.com/.default"


async def test_a_token_about_to_expire_is_not_served_from_the_cache(
    fake_server: FakeServer,
) -> None:
    fake = fake_server[0]
    fake.token_lifetime_s = 60  # inside msal's five-minute refresh margin
    tokens = provider(fake_server)
    scope = default_scope(fake.graph_base_url)

    first = await tokens.token(scope)
    second = await tokens.token(scope)

    assert first != second and fake.tokens_issued == 2
