"""Reading `aoc.events` as a downstream consumer (store sink, alerter, SIEM forwarder).

Every consumer of the normalized topic must treat a record it cannot use the same way: validate it
against the canonical model, refuse a `schema_version` newer than it understands, and turn anything
else into a dead letter with the reason and where it came from, so that one poison record never stops
a consumer group and nothing is dropped silently. Pure functions: publishing the dead letters is the
caller's I/O (`dead_letter_messages` gives it the messages).

The store sink reads less: the normalizer already validated every event it published, so the sink
checks only the fields a store indexes (`decode_events_to_store`) and stores the JSON as it came. So
does the SIEM forwarder when it passes events on in AOC's own schema (`decode_events_to_pass_on`):
rebuilding the whole model only to send the same bytes cost more than sending them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import ValidationError

from aoc_common.codec import encode
from aoc_common.dead_letter import DeadLetter, dead_letter
from aoc_common.event_store.encoded import EncodedEvent, IndexedFields, indexed_fields_of
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


def _not_canonical(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "value"
    return (
        f"not a canonical event ({error.error_count()} problem(s)): {where}: {first['msg'][:300]}"
    )


def _too_new(schema_version: int, reader: str) -> str | None:
    if schema_version > SCHEMA_VERSION:
        return f"schema_version {schema_version} is newer than this {reader} ({SCHEMA_VERSION})"
    return None


Read = TypeVar("Read")


def _read_each(
    records: Sequence[Record],
    read: Callable[[bytes], Read],
    schema_version_of: Callable[[Read], int],
    *,
    stage: str,
    reader: str,
) -> tuple[list[tuple[Record, Read]], list[DeadLetter]]:
    """The one way every consumer reads the topic: `read` each record (a ValidationError is a dead
    letter saying what is wrong), then refuse a schema version newer than `reader` knows."""
    usable: list[tuple[Record, Read]] = []
    dead_letters: list[DeadLetter] = []
    for record in records:
        try:
            value = read(record.value)
        except ValidationError as error:
            reason = _not_canonical(error)
            dead_letters.append(dead_letter_for_record(record, reason, stage=stage))
            continue
        too_new = _too_new(schema_version_of(value), reader)
        if too_new:
            dead_letters.append(dead_letter_for_record(record, too_new, stage=stage))
            continue
        usable.append((record, value))
    return usable, dead_letters


def decode_canonical_events(records: Sequence[Record], *, stage: str, reader: str) -> DecodedEvents:
    """Every record becomes a usable event or a dead letter saying why `reader` cannot use it."""
    usable, dead_letters = _read_each(
        records,
        CanonicalEvent.model_validate_json,
        lambda event: event.schema_version,
        stage=stage,
        reader=reader,
    )
    return DecodedEvents([ConsumedEvent(r, e) for r, e in usable], dead_letters)


@dataclass(frozen=True, slots=True)
class EventToStore:
    """A record read for the store: its indexed fields checked, its JSON kept as published."""

    record: Record
    event: EncodedEvent


@dataclass
class DecodedForStore:
    events: list[EventToStore] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


def decode_events_to_store(records: Sequence[Record], *, stage: str) -> DecodedForStore:
    """Every record becomes an event to store or a dead letter saying why it cannot be stored.

    Checks what a store relies on (valid JSON; the id, dedupe key, timestamps, service, category,
    operation, result, source, actor, summary and text with their types; a schema version it
    knows), at a tenth of the cost of validating the whole event again.
    """
    usable, dead_letters = _read_each(
        records,
        EncodedEvent.from_json,
        lambda event: event.fields.schema_version,
        stage=stage,
        reader="sink",
    )
    return DecodedForStore([EventToStore(r, e) for r, e in usable], dead_letters)


@dataclass(frozen=True, slots=True)
class PassedOnEvent:
    """A record a consumer passes on as published: the fields it reads (`event`) checked, the rest
    left as the normalizer validated it."""

    record: Record
    event: IndexedFields

    @property
    def json(self) -> bytes:
        """The event's JSON exactly as it was published."""
        return self.record.value


@dataclass
class DecodedToPassOn:
    events: list[PassedOnEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


def decode_events_to_pass_on(
    records: Sequence[Record], *, stage: str, reader: str
) -> DecodedToPassOn:
    """Every record becomes an event to pass on or a dead letter saying why `reader` cannot use it:
    the checks of `decode_events_to_store` (a usable id, dedupe key, timestamps, source, result…,
    a schema version it knows), at a tenth of the cost of validating the whole event."""
    usable, dead_letters = _read_each(
        records,
        indexed_fields_of,
        lambda fields: fields.schema_version,
        stage=stage,
        reader=reader,
    )
    return DecodedToPassOn([PassedOnEvent(r, f) for r, f in usable], dead_letters)


def dead_letter_messages(dead_letters: Sequence[DeadLetter]) -> list[Message]:
    """The DLQ messages for `dead_letters`, keyed like the records they replace."""
    return [Message(d.key.encode() if d.key else None, encode(d)) for d in dead_letters]
