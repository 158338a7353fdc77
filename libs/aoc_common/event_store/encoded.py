"""An event as the normalizer published it: its JSON, plus the few fields a store indexes.

The normalizer builds every event on `aoc.events` as a validated `CanonicalEvent`. Rebuilding that
model in the store sink only to serialise it again cost more than the database write (issue 10),
so the sink reads just what a store indexes (`IndexedFields`, validated, so a record without a
usable timestamp or dedupe key still becomes a dead letter with the reason) and stores the JSON
exactly as published. Everything read back is validated as a `CanonicalEvent` as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aoc_common.events import (
    SCHEMA_VERSION,
    ActorType,
    CanonicalEvent,
    Result,
    Source,
    to_utc_millis,
)

_NO_OFFSET = timedelta(0)


class IndexedActor(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: ActorType = "unknown"


class IndexedFields(BaseModel):
    """The fields of a canonical event that stores filter, sort, search and dedupe on, with the
    same types and rules as `CanonicalEvent` (other fields are ignored here, not dropped: they
    stay in the stored JSON)."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int = SCHEMA_VERSION
    id: str = Field(min_length=1)
    dedupe_key: str = Field(min_length=1)
    source: Source
    timestamp: datetime
    ingested_at: datetime
    service: str
    category: str
    operation: str
    result: Result
    actor_display: str
    actor: IndexedActor
    target_displays: list[str] = Field(default_factory=list)
    display_summary: str
    raw_text: str
    tags: list[str] = Field(default_factory=list)

    @field_validator("timestamp", "ingested_at")
    @classmethod
    def _utc_millis(cls, value: datetime) -> datetime:
        # What the normalizer publishes is already UTC to the millisecond: keep it as it is
        # (converting costs more than validating the rest of these fields).
        if value.microsecond % 1000 == 0 and value.utcoffset() == _NO_OFFSET:
            return value
        return to_utc_millis(value)

    @property
    def text_fields(self) -> tuple[str, ...]:
        """The named fields search indexes, in `search_terms_for` order (raw text aside)."""
        return (
            self.display_summary,
            self.actor_display,
            *self.target_displays,
            self.operation,
            self.service,
            self.category,
        )


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """A canonical event's JSON (`json`) with its indexed fields already read (`fields`)."""

    fields: IndexedFields
    json: bytes

    @classmethod
    def of(cls, event: CanonicalEvent) -> EncodedEvent:
        """From a model (the API, tests, the demo): the same path as a consumed record."""
        fields = IndexedFields.model_validate(event, from_attributes=True)
        return cls(fields, event.model_dump_json().encode())

    @classmethod
    def from_json(cls, value: bytes) -> EncodedEvent:
        """From published JSON; raises pydantic's ValidationError when an indexed field is
        missing or has the wrong type.

        orjson parses and pydantic validates the dict: 0.57 of the time of pydantic's own JSON
        mode (which parses every field to skip the ones not indexed; same run, bench corpus).
        JSON orjson refuses (malformed, NaN, numbers past a double, lone surrogates) goes to
        pydantic's parser, so such a record is read, or refused with the reason, as before."""
        try:
            document = orjson.loads(value)
        except orjson.JSONDecodeError:
            return cls(IndexedFields.model_validate_json(value), value)
        return cls(IndexedFields.model_validate(document), value)
