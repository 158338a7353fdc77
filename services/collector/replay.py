"""The replay source: publishes saved API answers (the fixtures format) instead of calling Microsoft.

Used by `aoc demo` and by tests. It reads the same shapes the live APIs return, each registered
source's sample files in its collection's format (Graph pages, Management Activity content blobs:
`aoc_common.sources.samples`). It can also replay
`malformed_inputs.json`, the bad-input drill: each entry is published as it would arrive from a broken
producer, so that the demo shows every one of them ending in the dead-letter topic with a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import orjson

from aoc_collector.core import envelopes
from aoc_common.events import RawEnvelope
from aoc_common.message_log.base import Message
from aoc_common.sources import all_sources
from aoc_common.sources.samples import sample_records
from aoc_common.topics import raw_topic

# Fixture files describe a 2 MB value as "<2,000,000 x 'A': …>" instead of storing it.
_REPEAT = re.compile(r"^<([\d,]+) x '(.)'")


def bundled_sample_dir() -> Path:
    return Path(str(files("aoc_collector") / "sample_data"))


@dataclass
class ReplaySet:
    envelopes: list[RawEnvelope] = field(default_factory=list)
    # Bytes that are not even an envelope (the bad-input drill's `not_json`), published as they are.
    raw_messages: list[tuple[str, Message]] = field(default_factory=list)


def _read(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def load_replay_set(
    directory: Path, *, tenant_id: str | None, fetched_at: datetime, include_malformed: bool
) -> ReplaySet:
    """Everything in `directory`, in the order the live collector would have fetched it."""
    replay = ReplaySet()
    for spec in all_sources():
        records = sample_records(spec, directory)
        replay.envelopes += envelopes(spec.id, records, tenant_id=tenant_id, fetched_at=fetched_at)
    malformed = directory / "malformed_inputs.json"
    if include_malformed and malformed.exists():
        for entry in _read(malformed):
            payload = _expand(entry.get("payload"))
            # The drill's records are directory audits unless an entry names its source.
            source = entry.get("source", "directory")
            if entry.get("kind") == "not_json" and isinstance(payload, str):
                message = Message(None, payload.encode("utf-8"))
                replay.raw_messages.append((raw_topic(source), message))
            else:
                replay.envelopes.append(
                    RawEnvelope(source=source, fetched_at=fetched_at, payload=payload)
                )
    return replay


def _expand(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, str) and (match := _REPEAT.match(value)):
        return match.group(2) * int(match.group(1).replace(",", ""))
    return value
