"""Entra ID app-only tokens (OAuth 2.0 client credentials) for Microsoft Graph and the Management API.

msal does the protocol (tenant discovery, the token request, its in-memory cache and expiry with a
five-minute margin); every HTTP request msal makes goes through `aoc_common.http_retry`, so token calls
get the same timeouts, Retry-After handling and backoff as every other outbound call. msal is
synchronous: it runs in a worker thread and hands each request back to the event loop.

Consumers depend on the `TokenProvider` protocol, never on msal. This module never logs or returns a
secret or a token in an error message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

import httpx
import msal
from pydantic import SecretStr

from aoc_common.http_retry import RetriesExhausted, RetryPolicy, Sleep, request_with_retries
from aoc_common.settings import Settings

TOKEN_TARGET = "entra-token"  # noqa: S105 - a metrics label, not a secret
DEFAULT_POLICY = RetryPolicy()


class TokenProvider(Protocol):
    """What the collector (and anyone else calling Microsoft) needs from an identity provider."""

    async def token(self, scope: str) -> str:
        """A bearer token for `scope` (e.g. `https://graph.microsoft.com/.default`), cached."""
        ...

    def invalidate(self, scope: str) -> None:
        """Forget the cached token for `scope` (the API said it expired): the next call fetches."""
        ...


class EntraAuthError(RuntimeError):
    """No token: credentials missing or refused, or the authority unreachable. Safe to show."""


def default_scope(resource_base_url: str) -> str:
    """`<resource>/.default`: every app permission granted on that resource (sovereign clouds too)."""
    return f"{resource_base_url.rstrip('/')}/.default"


class _LoopHttpClient:
    """msal's HttpClient interface, answered by `request_with_retries` on the event loop.

    Called from msal's worker thread; the loop is free meanwhile (it awaits that thread), so the
    request runs there and this thread blocks on its result.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        loop: asyncio.AbstractEventLoop,
        policy: RetryPolicy,
        sleep: Sleep,
    ) -> None:
        self._http = http
        self._loop = loop
        self._policy = policy
        self._sleep = sleep

    def post(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> httpx.Response:
        body: dict[str, Any] = {}
        if isinstance(data, str | bytes):
            body["content"] = data
        elif data is not None:
            body["data"] = dict(data)
        return self._send("POST", url, params, headers, body)

    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> httpx.Response:
        return self._send("GET", url, params, headers, {})

    def close(self) -> None:
        """msal may close its client; the AsyncClient belongs to our owner, not to msal."""

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, Any] | None,
        body: dict[str, Any],
    ) -> httpx.Response:
        clean_headers = {k: str(v) for k, v in (headers or {}).items() if v is not None}
        call = request_with_retries(
            self._http,
            method,
            url,
            target=TOKEN_TARGET,
            policy=self._policy,
            sleep=self._sleep,
            params=dict(params or {}),
            headers=clean_headers,
            **body,
        )
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()


class EntraTokenProvider:
    """Client-credentials tokens for one app registration, cached per scope until near expiry."""

    def __init__(
        self,
        *,
        tenant_id: str | None,
        client_id: str | None,
        client_secret: SecretStr | None,
        authority_host: str = "https://login.microsoftonline.com",
        http: httpx.AsyncClient,
        policy: RetryPolicy = DEFAULT_POLICY,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._tenant_id = tenant_id
        self._client_id = client_id
        self._client_secret = client_secret
        self._authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self._http = http
        self._policy = policy
        self._sleep = sleep
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = asyncio.Lock()
        # Scopes whose cached token the API rejected; cleared inside msal's thread before the next
        # acquisition, so that `invalidate` never blocks the event loop on msal's work.
        self._stale: set[str] = set()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        http: httpx.AsyncClient,
        *,
        policy: RetryPolicy = DEFAULT_POLICY,
        sleep: Sleep = asyncio.sleep,
    ) -> EntraTokenProvider:
        return cls(
            tenant_id=settings.tenant_id,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            authority_host=settings.authority_host,
            http=http,
            policy=policy,
            sleep=sleep,
        )

    def missing_credentials(self) -> list[str]:
        """The settings still to fill in before any token can be requested."""
        wanted = {
            "TENANT_ID": self._tenant_id,
            "CLIENT_ID": self._client_id,
            "CLIENT_SECRET": self._client_secret.get_secret_value()
            if self._client_secret
            else None,
        }
        return [name for name, value in wanted.items() if not value]

    async def token(self, scope: str) -> str:
        missing = self.missing_credentials()
        if missing:
            raise EntraAuthError(f"credentials not configured: set {', '.join(missing)}")
        async with self._lock:
            loop = asyncio.get_running_loop()
            return await asyncio.to_thread(self._acquire, scope, loop)

    def invalidate(self, scope: str) -> None:
        self._stale.add(scope)

    def _acquire(self, scope: str, loop: asyncio.AbstractEventLoop) -> str:
        try:
            app = self._application(loop)
            if scope in self._stale:
                self._stale.discard(scope)
                cache = app.token_cache
                for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                    if scope.lower() in str(item.get("target", "")).lower().split():
                        cache.remove_at(item)
            result = app.acquire_token_for_client(scopes=[scope])
        except RetriesExhausted as error:
            raise EntraAuthError(f"Entra ID token endpoint unreachable: {error}") from None
        except (ValueError, httpx.HTTPError) as error:
            # msal raises ValueError when tenant discovery fails (unknown tenant, bad authority).
            raise EntraAuthError(
                f"Entra ID authority {self._authority}: {_first_line(error)}"
            ) from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if isinstance(token, str) and token:
            return token
        error_code = result.get("error", "unknown_error") if isinstance(result, dict) else "?"
        description = result.get("error_description", "") if isinstance(result, dict) else ""
        raise EntraAuthError(
            f"Entra ID refused a token for {scope}: {error_code}: {_first_line(description)}"
        )

    def _application(self, loop: asyncio.AbstractEventLoop) -> msal.ConfidentialClientApplication:
        if self._app is None:
            secret = self._client_secret.get_secret_value() if self._client_secret else None
            self._app = msal.ConfidentialClientApplication(
                self._client_id,
                client_credential=secret,
                authority=self._authority,
                # Tenant discovery still runs against AUTHORITY_HOST; instance discovery would ask
                # login.microsoftonline.com about it, which is wrong for sovereign/private clouds.
                instance_discovery=False,
                http_client=_LoopHttpClient(self._http, loop, self._policy, self._sleep),
            )
        return self._app


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else "(no description)"
