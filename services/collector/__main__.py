"""`python -m aoc_collector`: publish audit records to the raw topics, then exit.

This first version replays saved API answers (the bundled samples, or a folder in the same format);
collecting live from Microsoft Graph and the Management Activity API is a later step.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aoc_collector.replay import bundled_sample_dir, load_replay_set
from aoc_collector.runtime import publish_envelopes
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
    await replay(settings, bundled_sample_dir(), include_malformed=False)


if __name__ == "__main__":
    sys.exit(run_service("collector", main))
