"""Work the embedded log does per call must not grow with the log: consumers ask for their lag every
few seconds of a run that appends thousands of messages a second. Work is counted in SQLite virtual
machine steps (a progress handler), which does not depend on the machine's speed or load."""

from __future__ import annotations

from pathlib import Path

from aoc_common.message_log.base import Message
from aoc_common.message_log.embedded import EmbeddedMessageLog

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
