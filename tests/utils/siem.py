"""The SIEM forwarder under test: which consumer group it reads as on which engine, whether it caught
up, and what it dead-lettered. The Kafka broker is shared by the session and other tests publish the
same fixture events, so a test gives its events ids of their own and counts only those."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from aoc_common import topics
from aoc_common.events import CanonicalEvent, event_id_for
from aoc_common.message_log.base import MessageLog
from tests.engines.kafka_server import using_tansu
from tests.utils.waiting import wait_for


@dataclass
class Engine:
    """A started message log and the consumer group the forwarder under test uses on it."""

    name: str
    message_log: MessageLog
    group: str


def with_ids_of_their_own(events: Sequence[CanonicalEvent]) -> list[CanonicalEvent]:
    """`events` under ids no other test uses, so that a test can tell its events from others'."""
    run = uuid.uuid4().hex[:8]
    copies = []
    for event in events:
        dedupe_key = f"{event.dedupe_key}#{run}"
        copies.append(
            event.model_copy(update={"dedupe_key": dedupe_key, "id": event_id_for(dedupe_key)})
        )
    return copies


def ours(received: list[str], events: list[CanonicalEvent]) -> list[str]:
    """The ids in `received` that belong to `events` (a shared broker may hold others)."""
    wanted = {e.id for e in events}
    return [event_id for event_id in received if event_id in wanted]


async def caught_up(engine: Engine) -> int:
    """Wait until the forwarder's group has committed everything on `aoc.events`; returns the lag.

    Tansu 0.6 under-reports a partition's end offset (see the xfail in the message log contract suite),
    so there a lag at or below zero is what "everything committed" looks like.
    """
    tansu = engine.name == "kafka" and using_tansu()
    lag = await wait_for(
        lambda: engine.message_log.lag(engine.group, topics.EVENTS),
        lambda n: n <= 0 if tansu else n == 0,
    )
    return 0 if tansu and lag <= 0 else lag


async def siem_dead_letters(
    message_log: MessageLog, event_ids: set[str], *, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """The forwarder's dead letters on `aoc.dlq` for `event_ids` (the topic holds others' too)."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    async with message_log.subscribe([topics.DLQ], f"test-dlq-{uuid.uuid4().hex}") as reader:
        while len(found) < len(event_ids) and time.monotonic() < deadline:
            for record in await reader.fetch(500, 0.5):
                letter = orjson.loads(record.value)
                if letter["stage"] != "siem_forwarder":
                    continue
                original = orjson.loads(base64.b64decode(letter["original_base64"]))
                if original.get("id") in event_ids:
                    found.append(letter)
    return found
