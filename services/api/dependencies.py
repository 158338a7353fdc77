"""How routes reach the engines: both are opened once in the app's lifespan and kept on `app.state`."""

from __future__ import annotations

from fastapi import Request

from aoc_common.event_store.base import EventStore
from aoc_common.message_log.base import MessageLog
from aoc_common.settings import Settings


def get_store(request: Request) -> EventStore:
    store: EventStore = request.app.state.store
    return store


def get_message_log(request: Request) -> MessageLog | None:
    message_log: MessageLog | None = request.app.state.message_log
    return message_log


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings
