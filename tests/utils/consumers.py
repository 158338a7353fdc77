"""Running a consumer in a test: in the background for a block, and until its group caught up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol, TypeVar

from aoc_common.message_log.base import MessageLog
from tests.utils.topic_io import topic_ends
from tests.utils.waiting import wait_for


class Runnable(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...


R = TypeVar("R", bound=Runnable)


@contextlib.asynccontextmanager
async def running(consumer: R) -> AsyncIterator[R]:
    """`consumer` consuming in the background; stopped cleanly (finish, commit, leave) at the end."""
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield consumer
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def caught_up(message_log: MessageLog, group: str, topic: str) -> None:
    """Until `group` has committed everything on `topic` (as read now, not as the broker reports)."""
    ends = await topic_ends(message_log, topic)

    async def behind() -> int:
        committed = await message_log.committed(group, topic)
        return sum(max(0, end - (committed.get(p) or 0)) for p, end in ends.items())

    assert await wait_for(behind, lambda n: n == 0) == 0
