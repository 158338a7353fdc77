"""The API over real engines holding every fixture event (normalized by the real core), and the
identity provider its sign-in tests trust."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from aoc_api.app import create_app
from aoc_common.engines import Engines
from aoc_common.event_store.base import EventStore
from aoc_common.settings import Settings
from tests.utils.asgi import asgi_client
from tests.utils.identity import FakeIdentityProvider, SigningKey, a_signing_key
from tests.utils.local_servers import serving
from tests.utils.records import fixture_events


@pytest.fixture
async def store(engines: Engines, fixtures_dir: Path) -> EventStore:
    """The engines' event store, holding every fixture event."""
    await engines.store.upsert_events(fixture_events(fixtures_dir))
    return engines.store


@pytest.fixture
async def client(
    tmp_path: Path, engines: Engines, store: EventStore
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=tmp_path, cors_origins=["https://soc.contoso.example"])
    app = create_app(settings, store=store, message_log=engines.message_log)
    async with asgi_client(app) as client:
        yield client


# --- sign-in: a local identity provider publishing the keys tokens are signed with ----------------


@pytest.fixture(scope="session")
def signing_keys() -> dict[str, SigningKey]:
    """Two keys the identity provider may publish, and one an attacker holds."""
    return {kid: a_signing_key(kid) for kid in ("key-1", "key-2", "attacker")}


@pytest.fixture(scope="session")
def served_idp(signing_keys: dict[str, SigningKey]) -> Iterator[FakeIdentityProvider]:
    provider = FakeIdentityProvider(keys=[signing_keys["key-1"]])
    with serving(provider.app()) as url:
        provider.url = url
        yield provider


@pytest.fixture
def idp(
    served_idp: FakeIdentityProvider, signing_keys: dict[str, SigningKey]
) -> FakeIdentityProvider:
    """The identity provider, publishing key-1 only, up and quick, with no fetch counted yet."""
    served_idp.keys, served_idp.fetches, served_idp.down = [signing_keys["key-1"]], 0, False
    served_idp.status, served_idp.delay_s = 200, 0.0
    return served_idp
