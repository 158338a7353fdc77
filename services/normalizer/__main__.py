"""`python -m aoc_normalizer`: raw topics → `aoc.events`, as consumer group aoc-normalizer."""

from __future__ import annotations

import asyncio
import sys

from aoc_common.message_log import open_message_log
from aoc_common.service import run_service
from aoc_common.settings import Settings
from aoc_normalizer.runtime import Normalizer


async def main(settings: Settings, stop: asyncio.Event) -> None:
    message_log = open_message_log(settings, client_id="aoc-normalizer")
    await message_log.start()
    try:
        await Normalizer.from_settings(message_log, settings).run(stop)
    finally:
        await message_log.stop()


if __name__ == "__main__":
    sys.exit(run_service("normalizer", main))
