"""Reading `aoc.events` as a downstream consumer (store sink, alerter, SIEM forwarder).

Every consumer of the normalized topic must treat a record it cannot use the same way: validate it
against the canonical model, refuse a `schema_version` newer than it understands, and turn anything
else into a dead letter with the reason and where it came from, so that one poison record never stops
a consumer group and nothing is dropped silently. Pure functions: publishing the dead letters is the
caller's I/O (`dead_letter_messages` gives it the messages).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from aoc_common.codec import encode
from aoc_common.dead_letter import DeadLetter, dead_letter
from aoc_common.events import SCHEMA_VERSION, CanonicalEvent
from aoc_common.message_log.base import Message, Record


@dataclass(frozen=True, slots=True)
class ConsumedEvent:
    """A validated event with the record it was read from (for offsets and dead letters)."""

    record: Record
    event: CanonicalEvent

    @property
    def json(self) -> bytes:
        """The event's JSON exactly as it was published, for consumers that pass it on verbatim."""
        return self.record.value


@dataclass
class DecodedEvents:
    events: list[ConsumedEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


def dead_letter_for_record(record: Record, reason: str, *, stage: str) -> DeadLetter:
    """A dead letter carrying the record's original bytes and its topic, partition and offset."""
    return dead_letter(
        record.value,
        reason,
        stage=stage,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        key=record.key,
    )


def decode_canonical_events(records: Sequence[Record], *, stage: str, reader: str) -> DecodedEvents:
    """Every record becomes a usable event or a dead letter saying why `reader` cannot use it."""
    decoded = DecodedEvents()
    for record in records:
        try:
            event = CanonicalEvent.model_validate_json(record.value)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "value"
            reason = (
                f"not a canonical event ({error.error_count()} problem(s)): {where}: "
                f"{first['msg'][:300]}"
            )
            decoded.dead_letters.append(dead_letter_for_record(record, reason, stage=stage))
            continue
        if event.schema_version > SCHEMA_VERSION:
            reason = (
                f"schema_version {event.schema_version} is newer than this {reader} "
                f"({SCHEMA_VERSION})"
            )
            decoded.dead_letters.append(dead_letter_for_record(record, reason, stage=stage))
            continue
        decoded.events.append(ConsumedEvent(record, event))
    return decoded


def dead_letter_messages(dead_letters: Sequence[DeadLetter]) -> list[Message]:
    """The DLQ messages for `dead_letters`, keyed like the records they replace."""
    return [Message(d.key.encode() if d.key else None, encode(d)) for d in dead_letters]
