"""`python -m aoc_normalizer` / `aoc run normalizer`: raw topics → `aoc.events`, as group aoc-normalizer.

On Kafka (KAFKA_BOOTSTRAP_SERVERS set) this runs the Faust app in-process; on the embedded log it runs the
embedded runtime. Both are shells around the same core. SIGHUP re-reads mappings.yml in either.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

import httpx

from aoc_common.entra_auth import EntraTokenProvider
from aoc_common.message_log import open_message_log
from aoc_common.service import run_service
from aoc_common.settings import Settings
from aoc_normalizer.enrichment import GraphDirectoryObjects, TokenSource
from aoc_normalizer.faust_app import build_app
from aoc_normalizer.runtime import GRAPH_RETRIES, GRAPH_TIMEOUT, Normalizer, install_sighup


def token_source(settings: Settings, http: httpx.AsyncClient) -> TokenSource | None:
    """Client-credentials tokens for Graph when enrichment is enabled (the collector's provider), else
    None. Settings validation already made sure the credentials are there."""
    if not settings.enrichment_enabled:
        return None
    return EntraTokenProvider.from_settings(settings, http)


async def run_embedded(settings: Settings, stop: asyncio.Event) -> None:
    message_log = open_message_log(settings, client_id="aoc-normalizer")
    await message_log.start()
    try:
        async with httpx.AsyncClient(timeout=GRAPH_TIMEOUT) as http:
            normalizer = Normalizer.from_settings(
                message_log, settings, tokens=token_source(settings, http), graph_client=http
            )
            await normalizer.run(stop)
    finally:
        await message_log.stop()


async def run_faust(settings: Settings, stop: asyncio.Event) -> None:
    """The Faust app started in this process, until `stop` or until the app stops by itself (a crash)."""
    async with httpx.AsyncClient(timeout=GRAPH_TIMEOUT) as client:
        tokens = token_source(settings, client)
        lookup = (
            None
            if tokens is None
            else GraphDirectoryObjects(client, tokens, settings.graph_base_url, GRAPH_RETRIES)
        )
        normalizer = build_app(settings, lookup=lookup)
        loop = asyncio.get_running_loop()
        sighup = install_sighup(loop, normalizer.mappings)
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
            if sighup:
                loop.remove_signal_handler(signal.SIGHUP)


async def main(settings: Settings, stop: asyncio.Event) -> None:
    if settings.resolved_log_engine == "kafka":
        await run_faust(settings, stop)
    else:
        await run_embedded(settings, stop)


if __name__ == "__main__":
    sys.exit(run_service("normalizer", main))
