"""The collector as a service, and its other public faces: the replay feed and the Microsoft stand-in.

- `build(settings, engines)`: the live collector (Microsoft Graph and the Management Activity API) with
  its control endpoint (COLLECTOR_CONTROL_HOST:PORT) for the API's `/api/fetch-audit-logs` and Graph
  notifications. It collects once at start, then every FETCH_INTERVAL_MINUTES when
  ENABLE_PERIODIC_FETCH is on, until stopped. With `stand_in`, it collects from the local stand-in
  (trusting its certificate, on its clock).
- `build_replay(...)`: saved API answers (the bundled samples) published once, as the collector would
  have published them; what `aoc demo` and the pipeline tests feed the pipeline with.
- `serve_stand_in(samples)`: the local stand-in of Entra ID, Graph and the Management Activity API
  (`FakeMicrosoft` and `self_signed_certificate` for `aoc stand-in`, which serves it on its own).
- `load_replay_set`, `publish_envelopes`: saved answers read and published as the collector does
  (`aoc ingest`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from aoc_collector.control import create_control_app
from aoc_collector.fake_microsoft import FakeMicrosoft
from aoc_collector.live import MICROSOFT_TIMEOUT, CollectionReport, Collector
from aoc_collector.replay import ReplaySet, bundled_sample_dir, load_replay_set
from aoc_collector.runtime import publish_envelopes
from aoc_collector.serving import Served, self_signed_certificate, serve_app
from aoc_common import topics
from aoc_common.engines import Engines
from aoc_common.entra_auth import EntraTokenProvider
from aoc_common.events import utc_now
from aoc_common.logging import get_logger
from aoc_common.message_log import MessageLog
from aoc_common.service import ServiceDefinition
from aoc_common.settings import Settings
from aoc_common.source_health import replayed_health, write_source_health
from aoc_common.sources import all_sources
from aoc_common.sources.samples import sample_records

__all__ = [
    "DEFINITION",
    "CollectionReport",
    "CollectorService",
    "FakeMicrosoft",
    "ReplayFeed",
    "ReplaySet",
    "StandIn",
    "build",
    "build_replay",
    "bundled_sample_dir",
    "load_replay_set",
    "publish_envelopes",
    "self_signed_certificate",
    "serve_stand_in",
]

log = get_logger("collector")


# --- the Microsoft stand-in ----------------------------------------------------------------------


class StandIn:
    """The local stand-in of Microsoft, served over TLS with a certificate made for it."""

    def __init__(self, fake: FakeMicrosoft, served: Served) -> None:
        self.fake = fake
        self.url = served.url
        self.client_ssl = served.client_ssl
        self.recorded_at = fake.now

    def settings_for(self, settings: Settings) -> Settings:
        """`settings` pointed at the stand-in: its tenant, app registration and endpoints."""
        return settings.model_copy(
            update={
                "tenant_id": self.fake.tenant_id,
                "client_id": self.fake.client_id,
                "client_secret": SecretStr(self.fake.client_secret),
                "authority_host": self.url,
                "graph_base_url": self.fake.graph_base_url,
                "management_api_base_url": self.fake.management_api_base_url,
            }
        )

    def now(self) -> datetime:
        """When the samples were recorded, so that Microsoft's 7- and 30-day limits apply to them as
        they did then (today the Management API would no longer list content from back then)."""
        return self.recorded_at or datetime.now(UTC)


@contextlib.asynccontextmanager
async def serve_stand_in(samples: Path) -> AsyncIterator[StandIn]:
    """The stand-in serving `samples` on a free loopback port until the block ends."""
    fake = FakeMicrosoft(samples)
    async with serve_app(fake.app, tls=True) as served:
        fake.base_url = served.url
        yield StandIn(fake, served)


# --- the live collector ----------------------------------------------------------------------------


class CollectorService:
    """The live collector and its control endpoint, until `stop`.

    `control_url` and `first_report` are set as they become known (`serving` and `collected` are set
    with them), for a process that wires the API to the collector or reports what was collected.
    """

    def __init__(
        self, settings: Settings, engines: Engines, *, stand_in: StandIn | None = None
    ) -> None:
        self.settings = stand_in.settings_for(settings) if stand_in else settings
        self.engines = engines
        self.stand_in = stand_in
        self.control_url: str | None = None
        self.first_report: CollectionReport | None = None
        self.serving = asyncio.Event()
        self.collected = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        await self.engines.message_log.ensure_topics([*topics.RAW_TOPICS, topics.DLQ])
        verify: Any = (
            self.stand_in.client_ssl if self.stand_in and self.stand_in.client_ssl else True
        )
        async with httpx.AsyncClient(timeout=MICROSOFT_TIMEOUT, verify=verify) as http:
            collector = Collector(
                message_log=self.engines.message_log,
                store=self.engines.store,
                settings=self.settings,
                http=http,
                tokens=EntraTokenProvider.from_settings(self.settings, http),
                now=self.stand_in.now if self.stand_in else utc_now,
            )
            await serve_collector(
                collector,
                self.settings,
                stop,
                on_serving=self._serving,
                on_first_run=self._collected,
            )

    def _serving(self, url: str) -> None:
        self.control_url = url
        self.serving.set()

    def _collected(self, report: CollectionReport) -> None:
        self.first_report = report
        self.collected.set()


async def serve_collector(
    collector: Collector,
    settings: Settings,
    stop: asyncio.Event,
    *,
    on_serving: Callable[[str], None] | None = None,
    on_first_run: Callable[[CollectionReport], None] | None = None,
) -> None:
    """Control endpoint up, then collect (once, or on the schedule) until `stop`."""
    token = settings.collector_control_token
    app = create_control_app(collector, token.get_secret_value() if token else None)
    async with serve_app(
        app, settings.collector_control_host, settings.collector_control_port
    ) as served:
        log.info("collector control endpoint", url=served.url)
        if on_serving is not None:
            on_serving(served.url)
        if settings.enable_periodic_fetch:
            await collector.run_periodically(stop, settings.fetch_interval_minutes * 60)
        else:
            report = await collector.run()
            if on_first_run is not None:
                on_first_run(report)
            await stop.wait()
        await collector.wait_idle()


def build(
    settings: Settings, engines: Engines, *, stand_in: StandIn | None = None
) -> CollectorService:
    return CollectorService(settings, engines, stand_in=stand_in)


DEFINITION = ServiceDefinition("collector", build)


# --- the replay feed -------------------------------------------------------------------------------


class ReplayFeed:
    """Saved API answers published once; `published` says how many records (and dead letters).

    Each source it fed gets a source health record `replayed` (with how many sample records), so the
    Sources view says so instead of "never run"; a live collection run later replaces it.
    """

    def __init__(
        self, settings: Settings, engines: Engines, directory: Path, *, include_malformed: bool
    ) -> None:
        self.settings = settings
        self.engines = engines
        self.message_log = engines.message_log
        self.directory = directory
        self.include_malformed = include_malformed
        self.published: int | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Publish the set and return (a feed, not a server: `stop` is not waited for)."""
        self.published = await publish_replay(
            self.message_log,
            self.settings,
            self.directory,
            include_malformed=self.include_malformed,
        )
        replayed_at = utc_now()
        for spec in all_sources():
            count = len(sample_records(spec, self.directory))
            if count:
                health = replayed_health(spec.id, count, str(self.directory), replayed_at)
                await write_source_health(self.engines.store, health)


def build_replay(
    settings: Settings, engines: Engines, directory: Path, *, include_malformed: bool
) -> ReplayFeed:
    return ReplayFeed(settings, engines, directory, include_malformed=include_malformed)


async def publish_replay(
    message_log: MessageLog, settings: Settings, directory: Path, *, include_malformed: bool
) -> int:
    """Publish a replay set on an open log; returns how many records were published."""
    items = load_replay_set(
        directory,
        tenant_id=settings.tenant_id,
        fetched_at=utc_now(),
        include_malformed=include_malformed,
    )
    published = await publish_envelopes(
        message_log, items.envelopes, max_record_bytes=settings.max_record_bytes
    )
    for topic, message in items.raw_messages:
        await message_log.publish(topic, [message])
    log.info(
        "replay published", records=published + len(items.raw_messages), directory=str(directory)
    )
    return published + len(items.raw_messages)
