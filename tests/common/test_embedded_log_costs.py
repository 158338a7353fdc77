"""What a call on the embedded log costs must not grow with the log, and a publish must not pay for
work that is not its own: consumers ask for their lag every few seconds of a run that appends
thousands of messages a second. Work is counted in SQLite virtual machine steps (a progress handler),
which does not depend on the machine's speed or load."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aoc_common.message_log.base import Message
from aoc_common.message_log.embedded import EmbeddedMessageLog
from aoc_common.sqlite_checkpoint import BACKSTOP_PAGES

STEP = 100


async def steps_of_end_offsets(message_log: EmbeddedMessageLog, topic: str) -> int:
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += STEP
        return 0  # go on

    message_log._conn.set_progress_handler(count, STEP)
    try:
        await message_log.end_offsets(topic)
    finally:
        message_log._conn.set_progress_handler(None, STEP)
    return steps


async def test_end_offsets_cost_the_same_for_a_short_and_a_long_partition(tmp_path: Path) -> None:
    message_log = EmbeddedMessageLog(tmp_path / "log.sqlite3", default_partitions=2)
    await message_log.start()
    try:
        await message_log.publish("short", [Message(b"k%d" % n, b"v") for n in range(200)])
        await message_log.publish("long", [Message(b"k%d" % n, b"v") for n in range(20_000)])
        assert sum((await message_log.end_offsets("long")).values()) == 20_000
        short = await steps_of_end_offsets(message_log, "short")
        long = await steps_of_end_offsets(message_log, "long")
        # A scan of the topic's offsets would take ~100 times the steps for 100 times the messages.
        assert long <= short + 2 * STEP, (short, long)
    finally:
        await message_log.stop()


async def test_publishes_leave_checkpoints_to_the_checkpointer_thread(tmp_path: Path) -> None:
    """A publish's commit no longer copies the WAL into the database (SQLite's default after 1,000
    pages); the log's own thread does, so the database file still receives what was published."""
    path = tmp_path / "log.sqlite3"
    message_log = EmbeddedMessageLog(path)
    await message_log.start()
    try:
        pages = await message_log._call(
            lambda: message_log._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
        assert pages == BACKSTOP_PAGES > 1_000
        value = b"x" * 4_000
        for _ in range(12):  # ~12 MB, three times the old automatic threshold
            await message_log.publish("big", [Message(b"%d" % n, value) for n in range(250)])
        deadline = asyncio.get_running_loop().time() + 30
        while path.stat().st_size < 8_000_000:
            assert asyncio.get_running_loop().time() < deadline, "nothing was checkpointed"
            await asyncio.sleep(0.05)
    finally:
        await message_log.stop()
