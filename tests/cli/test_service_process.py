"""A service in a child process of its own (what `aoc demo` does for its consumers): it works on the
shared embedded engines with the parent's settings, stops when asked, is reported when it dies, and
never outlives its parent."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from aoc_cli.service_process import ServiceProcess, ServiceStopped
from aoc_common import topics
from aoc_common.codec import encode, encode_key
from aoc_common.event_store.sqlite import SqliteEventStore
from aoc_common.message_log.base import Message
from aoc_common.message_log.embedded import EmbeddedMessageLog
from tests.utils.records import fixture_events


def overrides(data_dir: Path) -> dict[str, object]:
    return {"log_engine": "embedded", "store_engine": "embedded", "data_dir": data_dir}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False  # a zombie: it has exited, its parent did not reap it yet
    return True


async def test_a_store_sink_in_its_own_process_stores_what_this_process_publishes(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    message_log = EmbeddedMessageLog(tmp_path / "log.sqlite3")
    await message_log.start()
    await message_log.ensure_topics(topics.ALL_TOPICS)
    store = SqliteEventStore(tmp_path / "events.sqlite3", retention_days=3650)
    await store.start()
    stop = asyncio.Event()
    child = ServiceProcess("store", overrides(tmp_path), tmp_path / "logs" / "store.log")
    running = asyncio.create_task(child.run(stop))
    try:
        events = fixture_events(fixtures_dir)[:5]
        await message_log.publish(
            topics.EVENTS, [Message(encode_key(e.dedupe_key), encode(e)) for e in events]
        )
        deadline = time.monotonic() + 60
        while await store.count_events() < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert await store.count_events() == 5
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=60)
        await store.stop()
        await message_log.stop()
    assert child.process is not None and child.process.returncode == 0  # a graceful stop


async def test_a_child_that_dies_is_reported_with_the_end_of_its_log(tmp_path: Path) -> None:
    child = ServiceProcess("normalizer", overrides(tmp_path), tmp_path / "normalizer.log")
    await child.start()
    assert child.process is not None
    await asyncio.sleep(1.0)
    child.process.kill()
    with pytest.raises(ServiceStopped, match=r"the normalizer process stopped \(exit code -9\)"):
        await asyncio.wait_for(child.run(asyncio.Event()), timeout=30)


PARENT = """
import asyncio, sys
from pathlib import Path
from aoc_cli.service_process import ServiceProcess

async def main(data_dir):
    child = ServiceProcess(
        "normalizer",
        {"log_engine": "embedded", "store_engine": "embedded", "data_dir": data_dir},
        Path(data_dir) / "normalizer.log",
    )
    await child.start()
    print(child.process.pid, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1]))
"""


async def test_the_child_does_not_outlive_a_parent_killed_with_sigkill(tmp_path: Path) -> None:
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PARENT, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    assert parent.stdout is not None
    child_pid = int(await asyncio.wait_for(parent.stdout.readline(), timeout=30))
    await asyncio.sleep(2.0)  # the child is up (its own imports done)
    assert alive(child_pid)
    parent.send_signal(signal.SIGKILL)
    await parent.wait()
    deadline = time.monotonic() + 30
    while alive(child_pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not alive(child_pid)
