"""How routes reach the engines and settings: opened once in the app's lifespan, kept on `app.state`.

Routes name what they use with the aliases below (`ReaderDep`, `WriterDep`, …), typed with the
narrow store view they need, as FastAPI's full-stack template does with `SessionDep`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from aoc_common.event_store.base import (
    AlertStore,
    EventReader,
    EventStore,
    EventWriter,
    RuleStore,
    StateStore,
)
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


StoreDep = Annotated[EventStore, Depends(get_store)]
ReaderDep = Annotated[EventReader, Depends(get_store)]
WriterDep = Annotated[EventWriter, Depends(get_store)]
StateDep = Annotated[StateStore, Depends(get_store)]
RulesDep = Annotated[RuleStore, Depends(get_store)]
AlertsDep = Annotated[AlertStore, Depends(get_store)]
MessageLogDep = Annotated[MessageLog | None, Depends(get_message_log)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
