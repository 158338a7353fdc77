"""Which events are first sightings inside the dedupe window: pure decisions over what a state remembers.

The Management Activity API redelivers content for up to 7 days and Graph pages overlap when fetch windows
do, so the same audit record reaches the normalizer more than once. The normalizer publishes a
`dedupe_key` once per window; the store sink's upsert on `dedupe_key` stays the final guard.

Where the seen keys live is the shell's business (a Faust table with a changelog, or a SQLite table beside
the embedded log). This module never does I/O and never reads the clock: `now_ms` is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aoc_common.message_log.base import timestamp_ms

DEFAULT_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class DedupeWindow:
    """A key seen less than `window` ago is a duplicate; an older sighting has expired."""

    window: timedelta = DEFAULT_WINDOW

    @property
    def window_ms(self) -> int:
        return int(self.window.total_seconds() * 1000)

    def seen_recently(self, seen_at_ms: int | None, now_ms: int) -> bool:
        return seen_at_ms is not None and now_ms - seen_at_ms < self.window_ms

    def first_sightings(
        self, keys: Sequence[str], seen: Mapping[str, int], now_ms: int
    ) -> list[bool]:
        """Per position in `keys`: True to publish. A key repeated inside the batch is published once."""
        decisions: list[bool] = []
        in_batch: set[str] = set()
        for key in keys:
            fresh = key not in in_batch and not self.seen_recently(seen.get(key), now_ms)
            in_batch.add(key)
            decisions.append(fresh)
        return decisions

    def expired_before_ms(self, now_ms: int) -> int:
        """Sightings older than this can be forgotten: they no longer make anything a duplicate."""
        return now_ms - self.window_ms


def now_ms(now: datetime) -> int:
    """`now` as the dedupe state stores it: milliseconds since the epoch."""
    return timestamp_ms(now)
