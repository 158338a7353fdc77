"""The embedded log shared by several processes, as `aoc run` and `aoc demo` use it: a member in one
process sees what another process publishes, quickly, and writers in several processes never reuse an
offset."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from aoc_common.message_log.base import Message
from aoc_common.message_log.embedded import EmbeddedMessageLog

PUBLISHER = """
import asyncio, sys
from pathlib import Path
from aoc_common.message_log.base import Message
from aoc_common.message_log.embedded import EmbeddedMessageLog

async def main(path, name, count):
    log = EmbeddedMessageLog(Path(path))
    await log.start()
    for n in range(count):
        await log.publish("shared", [Message(None, f"{name}-{n}".encode())])
    await log.stop()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def run_publisher(path: Path, name: str, count: int) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PUBLISHER, str(path), name, str(count)
    )
    assert await asyncio.wait_for(process.wait(), timeout=60) == 0


async def test_a_member_sees_another_process_publish_within_a_fraction_of_a_second(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.sqlite3"
    message_log = EmbeddedMessageLog(path)
    await message_log.start()
    try:
        await message_log.ensure_topics(["shared"])
        async with message_log.subscribe(["shared"], "reader") as reader:
            assert await reader.fetch(10, 0.2) == []  # waiting, polling the file
            publisher = asyncio.create_task(run_publisher(path, "other", 1))
            started = time.monotonic()
            records = []
            while not records and time.monotonic() - started < 20:
                records = await reader.fetch(10, 5.0)
            await publisher
        assert [r.value for r in records] == [b"other-0"]
    finally:
        await message_log.stop()


async def test_writers_in_several_processes_get_dense_unique_offsets(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    message_log = EmbeddedMessageLog(path)
    await message_log.start()
    try:
        await message_log.ensure_topics(["shared"])
        await message_log.publish("shared", [Message(None, b"here-0")])
        await asyncio.gather(*(run_publisher(path, f"p{n}", 50) for n in range(3)))
        async with message_log.subscribe(["shared"], "reader") as reader:
            records = []
            while len(records) < 151:
                batch = await reader.fetch(500, 2.0)
                assert batch, f"only {len(records)} of 151 records"
                records += batch
        assert [r.offset for r in records] == list(range(151))
        assert len({r.value for r in records}) == 151
    finally:
        await message_log.stop()
