"""`aoc replay`: move a stopped consumer group to an offset or a time, then (with --follow) watch it
re-process: how many messages it has to read again, how fast it goes, and about how long it has left.

The reset itself needs the group stopped (the log refuses otherwise); the group's service then re-reads
from the new position when it is started again, which `--follow` watches through the group's lag.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import datetime

from aoc_cli.progress import Progress
from aoc_common.message_log import MessageLog, open_message_log
from aoc_common.settings import Settings

FOLLOW_EVERY_S = 1.0


async def replay(
    settings: Settings,
    group: str,
    topic: str,
    offset: int | None,
    timestamp: datetime | None,
    *,
    follow: bool = False,
    follow_timeout_s: float | None = None,
) -> int:
    message_log = open_message_log(settings, client_id="aoc-replay")
    await message_log.start()
    try:
        try:
            positions = await message_log.reset_group(
                group, topic, to_offset=offset, to_timestamp=timestamp
            )
        except (ValueError, RuntimeError) as error:
            print(f"replay refused: {error}", file=sys.stderr)
            return 1
        ends = await message_log.end_offsets(topic)
        for partition, position in sorted(positions.items()):
            print(f"{group} on {topic}[{partition}] will resume at offset {position}")
        again = sum(max(ends.get(p, 0) - position, 0) for p, position in positions.items())
        print(f"{again:,} messages to re-process on {topic}")
        if not follow:
            print(
                f"start the {group} service to re-process them; "
                f"`aoc replay … --follow` shows its progress and an estimate"
            )
            return 0
        return await follow_group(message_log, group, topic, again, follow_timeout_s)
    finally:
        await message_log.stop()


async def follow_group(
    message_log: MessageLog, group: str, topic: str, total: int, timeout_s: float | None
) -> int:
    """Progress of `group` through `topic` until it has caught up (messages published meanwhile count)."""
    progress = Progress(f"{group} re-processing {topic}", total, unit="messages")
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    start_lag = total
    while True:
        lag = await message_log.lag(group, topic)
        if lag > start_lag:  # new messages arrived: they are part of what is left to do
            progress.total += lag - start_lag
            start_lag = lag
        progress.set(progress.total - lag)
        if lag <= 0:
            progress.finish()
            return 0
        if deadline is not None and time.monotonic() > deadline:
            progress.finish()
            print(f"{lag:,} messages still to re-process; the group keeps going", file=sys.stderr)
            return 3
        await asyncio.sleep(FOLLOW_EVERY_S)
