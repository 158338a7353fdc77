"""The embedded log shared by several processes, as `aoc run` and `aoc demo` use it: a member in one
process sees what another process publishes, quickly, and writers in several processes never reuse an
offset."""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from aoc_common.message_log.base import Message
from aoc_common.message_log.embedded import EmbeddedMessageLog
from aoc_common.message_log.embedded_lock import SUFFIX as WRITER_LOCK_SUFFIX
from aoc_common.message_log.embedded_wakeup import doorbell_folder

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


async def test_a_waiting_member_is_woken_by_another_process_publish_not_by_a_poll(
    tmp_path: Path,
) -> None:
    """With the poll set to an hour, only the publisher's doorbell ring can end the wait."""
    path = tmp_path / "log.sqlite3"
    message_log = EmbeddedMessageLog(path, poll_interval_s=3600)
    await message_log.start()
    try:
        await message_log.ensure_topics(["shared", "other"])
        async with message_log.subscribe(["shared"], "reader") as reader:
            waiting = asyncio.create_task(reader.fetch(10, 3600))
            await run_publisher(path, "elsewhere", 1)
            records = await asyncio.wait_for(waiting, timeout=30)
        assert [r.value for r in records] == [b"elsewhere-0"]
    finally:
        await message_log.stop()


async def test_a_stopped_reader_leaves_no_doorbell_behind(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    message_log = EmbeddedMessageLog(path)
    await message_log.start()
    async with message_log.subscribe(["shared"], "reader"):
        assert any(doorbell_folder(path).iterdir())
    await message_log.stop()
    assert not doorbell_folder(path).exists()


async def test_a_doorbell_left_by_a_dead_reader_is_removed_by_the_next_publish(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.sqlite3"
    folder = doorbell_folder(path)
    folder.mkdir(parents=True)
    stale = folder / "999999-deadbeef.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dead:
        dead.bind(str(stale))  # closed without unlinking, as a killed process leaves it
    message_log = EmbeddedMessageLog(path)
    await message_log.start()
    try:
        await message_log.publish("shared", [Message(None, b"one")])
        assert not stale.exists()
        assert await message_log.end_offsets("shared") == {0: 1}
    finally:
        await message_log.stop()


def blocked_flock_waiters(lock_file: Path) -> int:
    """Waiters the kernel has queued on `lock_file` (Linux `/proc/locks` marks them with `->`)."""
    inode = f":{lock_file.stat().st_ino} "
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "->" in line and "FLOCK" in line and inode in line)


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks")
async def test_a_writer_waits_for_the_lock_in_the_kernel_queue_and_goes_on_when_released(
    tmp_path: Path,
) -> None:
    """A writer waiting for another process's write lock sleeps in the kernel's queue on the lock
    file (woken when it is released), not in SQLite's busy handler (woken after fixed sleeps)."""
    path = tmp_path / "log.sqlite3"
    message_log = EmbeddedMessageLog(path)
    await message_log.start()
    try:
        await message_log.publish("shared", [Message(None, b"first")])
        lock_file = path.with_name(path.name + WRITER_LOCK_SUFFIX)
        holder = os.open(lock_file, os.O_RDWR)
        fcntl.flock(holder, fcntl.LOCK_EX)  # as another process's writer holds it
        try:
            publishing = asyncio.create_task(message_log.publish("shared", [Message(None, b"2")]))
            deadline = time.monotonic() + 30
            while blocked_flock_waiters(lock_file) == 0:
                assert not publishing.done(), "published without waiting for the lock file"
                assert time.monotonic() < deadline, "the writer never queued on the lock file"
                await asyncio.sleep(0.01)
        finally:
            fcntl.flock(holder, fcntl.LOCK_UN)
            os.close(holder)
        await asyncio.wait_for(publishing, timeout=30)
        assert await message_log.end_offsets("shared") == {0: 2}
    finally:
        await message_log.stop()


async def test_a_lock_file_held_for_ever_delays_a_publish_but_never_blocks_it(
    tmp_path: Path,
) -> None:
    """A holder that hangs (stopped, deadlocked) must not stop every writer: after the lock file's
    timeout the writer goes on to SQLite's own locking, which is free here, and publishes."""
    path = tmp_path / "log.sqlite3"
    message_log = EmbeddedMessageLog(path, writer_lock_timeout_s=0.2)
    await message_log.start()
    try:
        await message_log.publish("shared", [Message(None, b"first")])
        holder = os.open(path.with_name(path.name + WRITER_LOCK_SUFFIX), os.O_RDWR)
        fcntl.flock(holder, fcntl.LOCK_EX)  # and never lets go during the test
        try:
            await asyncio.wait_for(
                message_log.publish("shared", [Message(None, b"second")]), timeout=30
            )
            await asyncio.wait_for(
                message_log.publish("shared", [Message(None, b"third")]), timeout=30
            )
        finally:
            fcntl.flock(holder, fcntl.LOCK_UN)
            os.close(holder)
        await message_log.publish("shared", [Message(None, b"fourth")])  # the lock file works again
        assert await message_log.end_offsets("shared") == {0: 4}
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
