"""Store sink logic without I/O: the dead letter of an event the store refuses.

Decoding `aoc.events` (and dead-lettering what is not a canonical event) is the EventConsumer's, shared
with the alerter and the SIEM forwarder.
"""

from __future__ import annotations

from aoc_common.consumed_events import dead_letter_for_record
from aoc_common.dead_letter import DeadLetter
from aoc_common.message_log.base import Record

STAGE = "store"


def dead_letter_for(record: Record, reason: str) -> DeadLetter:
    return dead_letter_for_record(record, reason, stage=STAGE)
