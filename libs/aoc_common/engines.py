"""The engines a process runs its services on: one message log and, when a service keeps state, one
event store. Every service's `build(settings, engines)` takes them, so that `aoc run <service>`, `aoc
demo` (every service on one pair of embedded engines) and the tests (both kinds of engine) wire a
service the same way.

A process opens only what its services use: the normalizer and the SIEM forwarder never need the
event store, and must not fail to start because MongoDB is down.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aoc_common.event_store import open_event_store
from aoc_common.event_store.base import EventStore
from aoc_common.message_log import open_message_log
from aoc_common.message_log.base import MessageLog
from aoc_common.settings import Settings


class Engines:
    """A started message log and event store, or those of them the process opened."""

    def __init__(self, message_log: MessageLog | None, store: EventStore | None = None) -> None:
        self._message_log = message_log
        self._store = store

    @property
    def message_log(self) -> MessageLog:
        """The message log; asking for it in a process opened without one is a wiring bug."""
        if self._message_log is None:
            raise LookupError("these engines were opened without a message log")
        return self._message_log

    @property
    def store(self) -> EventStore:
        """The event store; asking for it in a process opened without one is a wiring bug."""
        if self._store is None:
            raise LookupError("these engines were opened without an event store")
        return self._store

    @property
    def has_store(self) -> bool:
        return self._store is not None

    def __repr__(self) -> str:
        log = self._message_log.engine if self._message_log is not None else "none"
        store = self._store.engine if self._store is not None else "none"
        return f"Engines(message_log={log}, store={store})"


@contextlib.asynccontextmanager
async def open_engines(
    settings: Settings, *, client_id: str, log: bool = True, store: bool = True
) -> AsyncIterator[Engines]:
    """The engines the settings choose (those asked for), started; stopped when the block ends."""
    async with contextlib.AsyncExitStack() as opened:
        message_log = open_message_log(settings, client_id=client_id) if log else None
        if message_log is not None:
            await message_log.start()
            opened.push_async_callback(message_log.stop)
        event_store = open_event_store(settings) if store else None
        if event_store is not None:
            await event_store.start()
            opened.push_async_callback(event_store.stop)
        yield Engines(message_log, event_store)
