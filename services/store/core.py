"""Store sink logic without I/O: decode a batch of `aoc.events` messages into events or dead letters."""

from __future__ import annotations

from collections.abc import Sequence

from aoc_common.consumed_events import (
    DecodedEvents,
    dead_letter_for_record,
    decode_canonical_events,
)
from aoc_common.dead_letter import DeadLetter
from aoc_common.message_log.base import Record

STAGE = "store"


def decode_events(records: Sequence[Record]) -> DecodedEvents:
    """Every record becomes an event to store or a dead letter saying why it cannot be stored."""
    return decode_canonical_events(records, stage=STAGE, reader="sink")


def dead_letter_for(record: Record, reason: str) -> DeadLetter:
    return dead_letter_for_record(record, reason, stage=STAGE)
