"""`python -m aoc_store`: `aoc.events` → event store, as consumer group aoc-store."""

from __future__ import annotations

import asyncio
import sys

from aoc_common.event_store import open_event_store
from aoc_common.message_log import open_message_log
from aoc_common.service import run_service
from aoc_common.settings import Settings
from aoc_store.runtime import StoreSink


async def main(settings: Settings, stop: asyncio.Event) -> None:
    message_log = open_message_log(settings, client_id="aoc-store")
    store = open_event_store(settings)
    await message_log.start()
    await store.start()
    try:
        await StoreSink(message_log, store).run(stop)
    finally:
        await store.stop()
        await message_log.stop()


if __name__ == "__main__":
    sys.exit(run_service("store", main))
