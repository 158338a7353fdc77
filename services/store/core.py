"""Store sink logic without I/O: decode a batch of `aoc.events` messages into events or dead letters."""

from __future__ import annotations

from collections.abc import Sequence

from aoc_common.consumed_events import (
    DecodedForStore,
    dead_letter_for_record,
    decode_events_to_store,
)
from aoc_common.dead_letter import DeadLetter
from aoc_common.message_log.base import Record

STAGE = "store"


def decode_events(records: Sequence[Record]) -> DecodedForStore:
    """Every record becomes an event to store or a dead letter saying why it cannot be stored."""
    return decode_events_to_store(records, stage=STAGE)


def dead_letter_for(record: Record, reason: str) -> DeadLetter:
    return dead_letter_for_record(record, reason, stage=STAGE)
