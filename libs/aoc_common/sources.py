"""What the three Microsoft audit sources have in common: where each keeps its record id.

The collector keys raw messages by this id and the normalizer derives the dedupe key from it, so both must
read it the same way.
"""

from __future__ import annotations

from typing import Any

from aoc_common.events import Source

RECORD_ID_FIELD: dict[Source, str] = {
    "directory": "id",  # Graph directoryAudit
    "intune": "id",  # Graph auditEvent
    "unified": "Id",  # Management Activity API common schema
}


def source_record_id(source: Source, payload: Any) -> str | None:
    """The record's own id, or None when it has none (or not a usable one)."""
    if not isinstance(payload, dict):
        return None
    value = payload.get(RECORD_ID_FIELD[source])
    return value if isinstance(value, str) and value.strip() else None
