"""Store sink logic without I/O: decode a batch of `aoc.events` messages into events or dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
from pydantic import ValidationError

from aoc_common.dead_letter import DeadLetter, dead_letter
from aoc_common.events import SCHEMA_VERSION, CanonicalEvent
from aoc_common.message_log.base import Record

STAGE = "store"


@dataclass
class DecodedBatch:
    events: list[tuple[Record, CanonicalEvent]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


def decode_events(records: Sequence[Record]) -> DecodedBatch:
    """Every record becomes an event to store or a dead letter saying why it cannot be stored."""
    batch = DecodedBatch()
    for record in records:
        try:
            event = CanonicalEvent.model_validate(orjson.loads(record.value))
        except (orjson.JSONDecodeError, ValidationError) as error:
            reason = f"not a canonical event: {str(error).splitlines()[0][:500]}"
            batch.dead_letters.append(dead_letter_for(record, reason))
            continue
        if event.schema_version > SCHEMA_VERSION:
            reason = (
                f"schema_version {event.schema_version} is newer than this sink ({SCHEMA_VERSION})"
            )
            batch.dead_letters.append(dead_letter_for(record, reason))
            continue
        batch.events.append((record, event))
    return batch


def dead_letter_for(record: Record, reason: str) -> DeadLetter:
    return dead_letter(
        record.value,
        reason,
        stage=STAGE,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        key=record.key,
    )
