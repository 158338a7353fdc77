"""An event as the normalizer published it: its JSON, plus the few fields a store indexes.

The normalizer builds every event on `aoc.events` as a validated `CanonicalEvent`. Rebuilding that
model in the store sink only to serialise it again cost more than the database write (issue 10),
so the sink reads just what a store indexes (`IndexedFields`, validated, so a record without a
usable timestamp or dedupe key still becomes a dead letter with the reason) and stores the JSON
exactly as published. Everything read back is validated as a `CanonicalEvent` as before.

Reading those fields is on the sink's hot path, so it has two ways (`indexed_fields_of`):
- msgspec decodes the published JSON straight into typed structs in C, skipping every other field
  of the document without building it (5.5 µs per bench event, against 11.4-12.2 for the pydantic
  way below, same run). It is strict: a field of another JSON type, a source it does not know, a
  timestamp not written the way the normalizer writes it (`2026-11-20T10:00:00[.fff[fff]]Z`),
  bytes that are not UTF-8... and it refuses the record rather than guess;
- every record it refuses is read the pydantic way (`IndexedFieldsModel`: orjson, then pydantic's
  validation, pydantic's own parser for what orjson refuses), which accepts or refuses it exactly
  as before, with the same dead-letter reason. So the fast way only ever accepts what the pydantic
  way accepts, with the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Annotated

import msgspec
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
_NOT_EMPTY = msgspec.Meta(min_length=1)
_parse_iso = datetime.fromisoformat


class IndexedActor(msgspec.Struct, gc=False):
    type: ActorType = "unknown"


class IndexedFields(msgspec.Struct, kw_only=True, gc=False):
    """The fields of a canonical event that stores filter, sort, search and dedupe on, with the
    same types and rules as `CanonicalEvent` (other fields are not read here, not dropped: they
    stay in the stored JSON). Timestamps are UTC to the millisecond. Made only by
    `indexed_fields_of` and `EncodedEvent.of`, which validate."""

    schema_version: int = SCHEMA_VERSION
    id: str
    dedupe_key: str
    source: str
    timestamp: datetime
    ingested_at: datetime
    service: str
    category: str
    operation: str
    result: Result
    actor_display: str
    actor: IndexedActor
    target_displays: list[str] = msgspec.field(default_factory=list)
    display_summary: str
    raw_text: str
    tags: list[str] = msgspec.field(default_factory=list)

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


class _PublishedActor(msgspec.Struct, gc=False):
    type: ActorType = "unknown"


class _Published(msgspec.Struct, kw_only=True, gc=False):
    """The indexed fields as msgspec reads them from published JSON (timestamps still text)."""

    schema_version: int = SCHEMA_VERSION
    id: Annotated[str, _NOT_EMPTY]
    dedupe_key: Annotated[str, _NOT_EMPTY]
    source: str
    timestamp: str
    ingested_at: str
    service: str
    category: str
    operation: str
    result: Result
    actor_display: str
    actor: _PublishedActor
    target_displays: list[str] = msgspec.field(default_factory=list)
    display_summary: str
    raw_text: str
    tags: list[str] = msgspec.field(default_factory=list)


_decode_published = msgspec.json.Decoder(_Published).decode


class IndexedActorModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: ActorType = "unknown"


class IndexedFieldsModel(BaseModel):
    """`IndexedFields` as pydantic validates them: what decides whether a record the fast way
    refused is usable after all, and the reason when it is not."""

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
    actor: IndexedActorModel
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

    def indexed(self) -> IndexedFields:
        return _indexed_fields(self, self.timestamp, self.ingested_at)


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """A canonical event's JSON (`json`) with its indexed fields already read (`fields`)."""

    fields: IndexedFields
    json: bytes

    @classmethod
    def of(cls, event: CanonicalEvent) -> EncodedEvent:
        """From a model (the API, tests, the demo): the same checks as a consumed record."""
        fields = IndexedFieldsModel.model_validate(event, from_attributes=True).indexed()
        return cls(fields, event.model_dump_json().encode())

    @classmethod
    def from_json(cls, value: bytes) -> EncodedEvent:
        """From published JSON; raises pydantic's ValidationError when an indexed field is
        missing or has the wrong type."""
        return cls(indexed_fields_of(value), value)


def indexed_fields_of(value: bytes) -> IndexedFields:
    """The indexed fields of a published event's JSON; raises pydantic's ValidationError when one
    is missing or has the wrong type. The fast way first, the pydantic way for what it refuses
    (see the module's docstring)."""
    fields = _read_published(value)
    if fields is not None:
        return fields
    return _validated(value).indexed()


def _read_published(value: bytes) -> IndexedFields | None:
    """The indexed fields as the normalizer publishes them, or None for anything else."""
    try:
        published = _decode_published(value)
        value.decode()  # msgspec does not check the UTF-8 of the fields it skips
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    timestamp = _published_time(published.timestamp)
    ingested_at = _published_time(published.ingested_at)
    if timestamp is None or ingested_at is None or published.source not in _known_sources():
        return None
    return _indexed_fields(published, timestamp, ingested_at)


def _indexed_fields(
    read: _Published | IndexedFieldsModel, timestamp: datetime, ingested_at: datetime
) -> IndexedFields:
    """`IndexedFields` from either way of reading them (the timestamps already converted)."""
    return IndexedFields(
        schema_version=read.schema_version,
        id=read.id,
        dedupe_key=read.dedupe_key,
        source=read.source,
        timestamp=timestamp,
        ingested_at=ingested_at,
        service=read.service,
        category=read.category,
        operation=read.operation,
        result=read.result,
        actor_display=read.actor_display,
        actor=IndexedActor(type=read.actor.type),
        target_displays=read.target_displays,
        display_summary=read.display_summary,
        raw_text=read.raw_text,
        tags=read.tags,
    )


def _published_time(text: str) -> datetime | None:
    """A timestamp written as pydantic writes the normalizer's (UTC, `Z`, whole seconds or up to
    six decimals), else None. Exactly what pydantic reads from such a text, cut to the
    millisecond; every other spelling is left to pydantic."""
    size = len(text)
    if not (
        (size == 20 or (21 < size < 28 and text[19] == "."))
        and text[-1] == "Z"
        and text[10] == "T"
        and text[4] == text[7] == "-"
        and text[13] == text[16] == ":"
    ):
        return None
    try:
        value = _parse_iso(text)
    except ValueError:
        return None
    if value.microsecond % 1000:
        value = value.replace(microsecond=value.microsecond - value.microsecond % 1000)
    return value


def _validated(value: bytes) -> IndexedFieldsModel:
    """orjson parses and pydantic validates the dict: 0.57 of the time of pydantic's own JSON
    mode. JSON orjson refuses (malformed, NaN, numbers past a double, lone surrogates) goes to
    pydantic's parser, so such a record is read, or refused with the reason, as before."""
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return IndexedFieldsModel.model_validate_json(value)
    return IndexedFieldsModel.model_validate(document)


@cache
def _known_sources() -> frozenset[str]:
    from aoc_common.sources import SOURCES

    return frozenset(SOURCES)
