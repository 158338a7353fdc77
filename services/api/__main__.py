"""`python -m aoc_api`: the API and web UI on API_HOST:API_PORT."""

from __future__ import annotations

import asyncio
import sys

from aoc_api.app import create_app
from aoc_api.server import serve
from aoc_common.event_store import open_event_store
from aoc_common.message_log import open_message_log
from aoc_common.service import run_service
from aoc_common.settings import Settings


async def main(settings: Settings, stop: asyncio.Event) -> None:
    # The engines start here, before uvicorn, so that a store or log that cannot be reached ends in
    # the service's one-line error instead of uvicorn's lifespan traceback.
    store = open_event_store(settings)
    message_log = open_message_log(settings, client_id="aoc-api")
    await store.start()
    try:
        await message_log.start()
        try:
            app = create_app(settings, store=store, message_log=message_log)
            await serve(app, settings.api_host, settings.api_port, stop)
        finally:
            await message_log.stop()
    finally:
        await store.stop()


if __name__ == "__main__":
    sys.exit(run_service("api", main))
