"""`python -m aoc_siem_forwarder`: `aoc.events` → the SIEM, as consumer group aoc-siem-forwarder."""

from __future__ import annotations

import asyncio
import sys

from aoc_common.logging import get_logger
from aoc_common.message_log import open_message_log
from aoc_common.service import run_service
from aoc_common.settings import Settings
from aoc_siem_forwarder.runtime import SiemForwarder

log = get_logger(__name__)


async def main(settings: Settings, stop: asyncio.Event) -> None:
    if not settings.siem_enabled:
        # Idle rather than exit: a container restarted on exit would loop, and setting SIEM_ENABLED=true
        # then restarting is all it takes to start forwarding. It never joins the consumer group idle.
        log.warning("SIEM_ENABLED is false: forwarding nothing until restarted with it set to true")
        await stop.wait()
        return
    message_log = open_message_log(settings, client_id="aoc-siem-forwarder")
    await message_log.start()
    try:
        forwarder = SiemForwarder.from_settings(message_log, settings)
        log.info("forwarding", format=settings.siem_format, group=forwarder.group)
        await forwarder.run(stop)
    finally:
        await message_log.stop()


if __name__ == "__main__":
    sys.exit(run_service("siem_forwarder", main))
