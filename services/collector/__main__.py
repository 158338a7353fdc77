"""`aoc run collector`: collect live from Microsoft Graph and the Management Activity API.

The service runs one collection at start, then every FETCH_INTERVAL_MINUTES when
ENABLE_PERIODIC_FETCH is on, and serves its control endpoint (COLLECTOR_CONTROL_HOST:PORT) for the
API's `/api/fetch-audit-logs` and Graph notifications until it is stopped. `publish_replay` (saved API
answers, the bundled samples) is what `aoc demo` and the pipeline tests use instead of Microsoft.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx

from aoc_collector.control import create_control_app
from aoc_collector.live import MICROSOFT_TIMEOUT, Collector
from aoc_collector.replay import load_replay_set
from aoc_collector.runtime import publish_envelopes
from aoc_collector.serving import serve_app
from aoc_common import topics
from aoc_common.entra_auth import EntraTokenProvider
from aoc_common.event_store import open_event_store
from aoc_common.events import utc_now
from aoc_common.logging import get_logger
from aoc_common.message_log import MessageLog, open_message_log
from aoc_common.service import run_service
from aoc_common.settings import Settings

log = get_logger("collector")


async def replay(settings: Settings, directory: Path, *, include_malformed: bool) -> int:
    """Publish everything in `directory` once; returns how many records were published."""
    message_log = open_message_log(settings, client_id="aoc-collector")
    await message_log.start()
    try:
        return await publish_replay(
            message_log, settings, directory, include_malformed=include_malformed
        )
    finally:
        await message_log.stop()


async def publish_replay(
    message_log: MessageLog, settings: Settings, directory: Path, *, include_malformed: bool
) -> int:
    """Publish a replay set on an open log (the demo shares its log with the other services)."""
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


async def main(settings: Settings, stop: asyncio.Event) -> None:
    message_log = open_message_log(settings, client_id="aoc-collector")
    store = open_event_store(settings)
    await message_log.start()
    await store.start()
    try:
        await message_log.ensure_topics([*topics.RAW_TOPICS, topics.DLQ])
        async with httpx.AsyncClient(timeout=MICROSOFT_TIMEOUT) as http:
            collector = Collector(
                message_log=message_log,
                store=store,
                settings=settings,
                http=http,
                tokens=EntraTokenProvider.from_settings(settings, http),
            )
            await serve_collector(collector, settings, stop)
    finally:
        await store.stop()
        await message_log.stop()


async def serve_collector(collector: Collector, settings: Settings, stop: asyncio.Event) -> None:
    """Control endpoint up, then collect (once, or on the schedule) until `stop`."""
    token = settings.collector_control_token
    app = create_control_app(collector, token.get_secret_value() if token else None)
    async with serve_app(
        app, settings.collector_control_host, settings.collector_control_port
    ) as served:
        log.info("collector control endpoint", url=served.url)
        if settings.enable_periodic_fetch:
            await collector.run_periodically(stop, settings.fetch_interval_minutes * 60)
        else:
            await collector.run()
            await stop.wait()
        await collector.wait_idle()


if __name__ == "__main__":
    sys.exit(run_service("collector", main))
