"""The live collector under test: pointed at the local Microsoft stand-in, on a clock and a sleep the
test controls, publishing to the test's engines."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from pydantic import BaseModel, SecretStr

from aoc_collector.fake_microsoft import FakeMicrosoft
from aoc_collector.live import Collector
from aoc_common.entra_auth import EntraTokenProvider
from aoc_common.event_store.base import EventStore
from aoc_common.http_retry import RetryPolicy
from aoc_common.message_log.base import MessageLog
from aoc_common.settings import Settings


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
        """`source_options`: each source's own settings (default: read from the environment)."""
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
