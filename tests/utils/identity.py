"""A stand-in for Entra ID's token signing: RSA keys made here, a key set served like
AUTHORITY_HOST/<tenant>/discovery/v2.0/keys, tokens signed with them, and the API set up to trust it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from jose import jwk, jwt

from aoc_api.app import create_app
from aoc_api.auth import JwksCache, TokenVerifier, jwks_url
from aoc_common.event_store.base import EventStore
from aoc_common.settings import Settings
from tests.utils.asgi import asgi_client

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


@dataclass
class SigningKey:
    kid: str
    private_pem: bytes
    public_pem: bytes
    public_jwk: dict[str, Any]


def a_signing_key(kid: str) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_jwk = jwk.construct(public_pem, "RS256").to_dict()
    public_jwk.update(kid=kid, use="sig")
    return SigningKey(kid, private_pem, public_pem, public_jwk)


@dataclass
class FakeIdentityProvider:
    """Publishes a key set at AUTHORITY_HOST/<tenant>/discovery/v2.0/keys and counts fetches."""

    keys: list[SigningKey]
    fetches: int = 0
    down: bool = False
    status: int = 200  # anything else: that error, as a key endpoint in trouble answers
    delay_s: float = 0.0  # a slow key endpoint
    url: str = ""
    extra: list[SigningKey] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/{tenant}/discovery/v2.0/keys")
        async def keys(tenant: str) -> JSONResponse:
            self.fetches += 1
            await asyncio.sleep(self.delay_s)
            if self.down or tenant != TENANT:
                return JSONResponse({"error": "unavailable"}, status_code=404)
            if self.status != 200:
                return JSONResponse({"error": "unavailable"}, status_code=self.status)
            return JSONResponse({"keys": [key.public_jwk for key in self.keys]})

        return app


class Clock:
    """The key-set cache's clock, moved by the test (an hour passes without waiting one)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def auth_settings(idp: FakeIdentityProvider, tmp_path: Path, **overrides: Any) -> Settings:
    """Sign-in on, trusting `idp` for TENANT and CLIENT; AOC.Writer may write, anyone signed in reads."""
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "auth_enabled": True,
        "auth_tenant_id": TENANT,
        "auth_client_id": CLIENT,
        "authority_host": idp.url,
        "auth_writer_roles": ["AOC.Writer"],
        "auth_allowed_roles": [],
        "auth_allowed_groups": [],
        **overrides,
    }
    return Settings(**values)


async def open_api(
    settings: Settings, store: EventStore, idp: FakeIdentityProvider
) -> tuple[FastAPI, Clock]:
    """The API on `store`, its key-set cache on a clock the test moves."""
    app = create_app(settings, store=store, message_log=None)
    clock = Clock()
    app.state.token_verifier = TokenVerifier(settings, JwksCache(jwks_url(settings), clock=clock))
    return app, clock


@contextlib.asynccontextmanager
async def api_client(
    settings: Settings, store: EventStore, idp: FakeIdentityProvider
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the API opened by `open_api`: the app's own errors come back as answers."""
    app, _ = await open_api(settings, store, idp)
    async with asgi_client(app) as client:
        yield client


def claims(**overrides: Any) -> dict[str, Any]:
    """The claims of a valid access token for this API (a writer), with `overrides`."""
    now = int(time.time())
    values = {
        "iss": f"{{authority}}/{TENANT}/v2.0",
        "aud": CLIENT,
        "tid": TENANT,
        "oid": "0a0a0a0a-0000-0000-0000-000000000001",
        "preferred_username": "analyst@contoso.com",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "roles": ["AOC.Writer"],
    }
    values.update(overrides)
    return values


def sign(key: SigningKey, idp: FakeIdentityProvider, *, kid: str | None = None, **over: Any) -> str:
    """A token issued by `idp`'s authority, signed with `key` (under `kid`, to forge one)."""
    payload = claims(**over)
    payload["iss"] = payload["iss"].replace("{authority}", idp.url)
    return jwt.encode(
        payload, key.private_pem.decode(), algorithm="RS256", headers={"kid": kid or key.kid}
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
