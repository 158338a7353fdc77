"""The live collector against the local Microsoft stand-in, served over TLS on a free loopback port."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel, SecretStr

from aoc_collector.fake_microsoft import FakeMicrosoft
from aoc_collector.live import Collector
from aoc_collector.serving import serve_app
from aoc_common import topics
from aoc_common.entra_auth import EntraTokenProvider
from aoc_common.event_store.base import EventStore
from aoc_common.event_store.sqlite import SqliteEventStore
from aoc_common.http_retry import RetryPolicy
from aoc_common.message_log.base import MessageLog
from aoc_common.message_log.embedded import EmbeddedMessageLog
from aoc_common.settings import Settings

# Unique records per source in the fixtures (the sign-in pages come from the bundled samples).
FIXTURE_COUNTS = {"directory": 60, "intune": 30, "signins": 31, "unified": 57}


class Clock:
    """The collector's clock, moved by the test (the fake's clock follows it)."""

    def __init__(self, fake: FakeMicrosoft) -> None:
        self.fake = fake

    def __call__(self) -> datetime:
        assert self.fake.now is not None
        return self.fake.now

    def advance(self, delta: timedelta) -> None:
        assert self.fake.now is not None
        self.fake.now = self.fake.now + delta


@dataclass
class RecordedSleep:
    """Stands in for asyncio.sleep: records each wait and returns at once."""

    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@dataclass
class Harness:
    fake: FakeMicrosoft
    base_url: str
    http: httpx.AsyncClient
    message_log: MessageLog
    store: EventStore
    clock: Clock
    sleep: RecordedSleep
    make: Callable[..., Collector]

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "tenant_id": self.fake.tenant_id,
            "client_id": self.fake.client_id,
            "client_secret": SecretStr(self.fake.client_secret),
            "authority_host": self.base_url,
            "graph_base_url": self.fake.graph_base_url,
            "management_api_base_url": self.fake.management_api_base_url,
            "fetch_overlap_minutes": 15,
            **overrides,
        }
        return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def fake_server(
    fixtures_dir: Path,
) -> AsyncIterator[tuple[FakeMicrosoft, str, httpx.AsyncClient]]:
    fake = FakeMicrosoft(fixtures_dir)
    async with serve_app(fake.app, tls=True) as served:
        fake.base_url = served.url
        async with httpx.AsyncClient(verify=served.client_ssl or True) as http:
            yield fake, served.url, http


def build_harness(
    fake_server: tuple[FakeMicrosoft, str, httpx.AsyncClient],
    message_log: MessageLog,
    store: EventStore,
) -> Harness:
    fake, base_url, http = fake_server
    clock = Clock(fake)
    sleep = RecordedSleep()
    harness: Harness

    def make(
        source_options: Mapping[str, BaseModel] | None = None, **overrides: object
    ) -> Collector:
        settings = harness.settings(**overrides)
        policy = RetryPolicy(max_attempts=4, base_delay_s=0.01)
        tokens = EntraTokenProvider.from_settings(settings, http, policy=policy, sleep=sleep)
        return Collector(
            message_log=message_log,
            store=store,
            settings=settings,
            http=http,
            tokens=tokens,
            now=clock,
            sleep=sleep,
            policy=policy,
            source_options=source_options,
        )

    harness = Harness(fake, base_url, http, message_log, store, clock, sleep, make)
    return harness


@pytest.fixture
async def harness(
    fake_server: tuple[FakeMicrosoft, str, httpx.AsyncClient], tmp_path: Path
) -> AsyncIterator[Harness]:
    message_log = EmbeddedMessageLog(tmp_path / "log.sqlite3")
    store = SqliteEventStore(tmp_path / "events.sqlite3", retention_days=3650)
    await message_log.start()
    await store.start()
    await message_log.ensure_topics(topics.ALL_TOPICS)
    yield build_harness(fake_server, message_log, store)
    await store.stop()
    await message_log.stop()


async def raw_keys(message_log: MessageLog, source: str, at_least: int = 0) -> list[str]:
    """Keys of every message on `aoc.raw.<source>`, read as a fresh consumer group."""
    keys: list[str] = []
    deadline = time.monotonic() + 60
    async with message_log.subscribe(
        [topics.raw_topic(source)],  # type: ignore[arg-type]
        f"test-reader-{uuid.uuid4().hex}",
    ) as reader:
        while time.monotonic() < deadline:
            records = await reader.fetch(500, 0.5)
            if not records and len(keys) >= at_least:
                break
            keys += [r.key.decode() if r.key else "" for r in records]
    return keys
