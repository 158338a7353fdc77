"""`python -m aoc_alerter`: `aoc.events` → alert rules → alerts, as consumer group aoc-alerter."""

from __future__ import annotations

import asyncio
import sys

from aoc_alerter.notify import WebhookNotifier
from aoc_alerter.runtime import Alerter
from aoc_common.event_store import open_event_store
from aoc_common.logging import get_logger
from aoc_common.message_log import open_message_log
from aoc_common.service import run_service
from aoc_common.settings import Settings

log = get_logger(__name__)


async def main(settings: Settings, stop: asyncio.Event) -> None:
    if not settings.alerts_enabled:
        # Idle rather than exit: a container that exits is restarted in a loop by its supervisor.
        log.warning("ALERTS_ENABLED=false: not evaluating alert rules")
        await stop.wait()
        return
    message_log = open_message_log(settings, client_id="aoc-alerter")
    store = open_event_store(settings)
    notifier = WebhookNotifier.from_settings(settings)
    await message_log.start()
    await store.start()
    try:
        await Alerter(message_log, store, notifier=notifier).run(stop)
    finally:
        if notifier is not None:
            await notifier.aclose()
        await store.stop()
        await message_log.stop()


if __name__ == "__main__":
    sys.exit(run_service("alerter", main))
