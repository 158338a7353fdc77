"""The normalizer as a service: raw topics → `aoc.events` (and `aoc.dlq`), as consumer group
aoc-normalizer.

On Kafka it is the Faust app, started in this process (Faust keeps its own Kafka clients and its
dedupe and name tables on the broker), or with `NORMALIZER_RUNTIME=consumer` the consumer runtime (AOC's
own aiokafka consumer, the same group, topics and changelogs); on the embedded log it is the embedded
runtime, with its state beside the log. All are shells around the same step. SIGHUP re-reads
mappings.yml in each. The normalizer never touches the event store.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Protocol, TypeVar

import httpx

from aoc_common.engines import Engines
from aoc_common.entra_auth import EntraTokenProvider
from aoc_common.service import Service, ServiceDefinition
from aoc_common.settings import Settings
from aoc_normalizer.consumer_runtime import build_consumer_runtime
from aoc_normalizer.enrichment import GraphDirectoryObjects, TokenSource
from aoc_normalizer.faust_app import build_app
from aoc_normalizer.mappings import LiveMappings
from aoc_normalizer.runtime import GRAPH_RETRIES, GRAPH_TIMEOUT, Normalizer, install_sighup


class KafkaRuntime(Protocol):
    """What `kafka_shell` needs of a runtime: the mappings SIGHUP reloads."""

    @property
    def mappings(self) -> LiveMappings: ...


RuntimeT = TypeVar("RuntimeT", bound=KafkaRuntime)


def token_source(settings: Settings, http: httpx.AsyncClient) -> TokenSource | None:
    """Client-credentials tokens for Graph when enrichment is enabled (the collector's provider), else
    None. Settings validation already made sure the credentials are there."""
    if not settings.enrichment_enabled:
        return None
    return EntraTokenProvider.from_settings(settings, http)


def build(settings: Settings, engines: Engines) -> Service:
    if settings.resolved_log_engine == "kafka":
        if settings.normalizer_runtime == "consumer":
            return KafkaConsumerNormalizer(settings)
        return FaustNormalizer(settings)
    return build_embedded(settings, engines)


def graph_lookup_for(settings: Settings, client: httpx.AsyncClient) -> GraphDirectoryObjects | None:
    """Graph through `client` when enrichment is on, else None."""
    tokens = token_source(settings, client)
    if tokens is None:
        return None
    return GraphDirectoryObjects(client, tokens, settings.graph_base_url, GRAPH_RETRIES)


def build_embedded(settings: Settings, engines: Engines) -> Normalizer:
    """The embedded runtime; with enrichment on, its Graph client (closed when it stops)."""
    if not settings.enrichment_enabled:
        return Normalizer.from_settings(engines.message_log, settings)
    http = httpx.AsyncClient(timeout=GRAPH_TIMEOUT)
    normalizer = Normalizer.from_settings(
        engines.message_log, settings, tokens=token_source(settings, http), graph_client=http
    )
    normalizer.graph_client = http
    return normalizer


@contextlib.asynccontextmanager
async def kafka_shell(
    settings: Settings, build_runtime: Callable[..., RuntimeT]
) -> AsyncIterator[RuntimeT]:
    """What both Kafka runtimes need around them: Graph for names (when enrichment is on) for as
    long as they run, and SIGHUP re-reading mappings.yml."""
    async with httpx.AsyncClient(timeout=GRAPH_TIMEOUT) as client:
        normalizer = build_runtime(settings, lookup=graph_lookup_for(settings, client))
        loop = asyncio.get_running_loop()
        sighup = install_sighup(loop, normalizer.mappings)
        try:
            yield normalizer
        finally:
            if sighup:
                loop.remove_signal_handler(signal.SIGHUP)


class FaustNormalizer:
    """The Faust app started in this process, until `stop` or until the app stops by itself (a crash)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def run(self, stop: asyncio.Event) -> None:
        async with kafka_shell(self.settings, build_app) as normalizer:
            await normalizer.app.start()
            try:
                stopped = asyncio.ensure_future(normalizer.app.wait_until_stopped())
                asked = asyncio.ensure_future(stop.wait())
                await asyncio.wait([stopped, asked], return_when=asyncio.FIRST_COMPLETED)
                for waiter in (stopped, asked):
                    waiter.cancel()
                if not stop.is_set():
                    raise RuntimeError(f"the Faust app stopped: {normalizer.app.crash_reason!r}")
            finally:
                with contextlib.suppress(Exception):
                    await normalizer.app.stop()


class KafkaConsumerNormalizer:
    """The consumer runtime (`NORMALIZER_RUNTIME=consumer`) in this process, until `stop`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def run(self, stop: asyncio.Event) -> None:
        async with kafka_shell(self.settings, build_consumer_runtime) as normalizer:
            await normalizer.run(stop)


def uses_log(settings: Settings) -> bool:
    """Both Kafka runtimes keep their own Kafka clients; only the embedded runtime uses AOC's log."""
    return settings.resolved_log_engine != "kafka"


DEFINITION = ServiceDefinition("normalizer", build, uses_store=False, uses_log=uses_log)


async def renormalize_since(settings: Settings, since: datetime, *, remap: bool = False) -> int:
    """`aoc renormalize --since T [--remap]`: publish named versions of events whose names were
    pending; with `remap`, every event of the range as the mapping in force maps it."""
    from aoc_normalizer.renormalize import run_renormalize

    return await run_renormalize(settings, since, remap=remap)
