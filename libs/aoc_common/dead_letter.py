"""Dead-letter records: a message that could not be handled, kept with why, where it came from and its bytes.

Nothing AOC receives may be dropped silently. A dead letter keeps the original bytes (base64, truncated to a
bounded size so that a 2 MB hostile payload cannot clog the DLQ) plus enough provenance to replay it.
"""

from __future__ import annotations

import base64
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from aoc_common.events import utc_now

MAX_KEPT_BYTES = 64 * 1024


class DeadLetter(BaseModel):
    """Published on `aoc.dlq`."""

    model_config = ConfigDict(extra="forbid")

    reason: str
    stage: str
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    key: str | None = None
    original_size: int
    original_base64: str
    original_truncated: bool
    dead_lettered_at: datetime

    def original_bytes(self) -> bytes:
        return base64.b64decode(self.original_base64)


def dead_letter(
    original: bytes,
    reason: str,
    *,
    stage: str,
    source_topic: str | None = None,
    source_partition: int | None = None,
    source_offset: int | None = None,
    key: bytes | None = None,
) -> DeadLetter:
    """Build a dead letter; the reason is capped so that a hostile value cannot bloat it either."""
    kept = original[:MAX_KEPT_BYTES]
    return DeadLetter(
        reason=reason[:2000],
        stage=stage,
        source_topic=source_topic,
        source_partition=source_partition,
        source_offset=source_offset,
        key=None if key is None else key.decode("utf-8", "replace")[:512],
        original_size=len(original),
        original_base64=base64.b64encode(kept).decode("ascii"),
        original_truncated=len(kept) < len(original),
        dead_lettered_at=utc_now(),
    )
