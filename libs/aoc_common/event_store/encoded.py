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
from typing import Annotated, Any, get_args, get_origin

import msgspec
import orjson
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

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
_astuple = msgspec.structs.astuple


class IndexedActor(msgspec.Struct, gc=False):
    type: ActorType = "unknown"


class IndexedFields(msgspec.Struct, gc=False):
    """The fields of a canonical event that stores filter, sort, search and dedupe on, with the
    same types and rules as `CanonicalEvent` (other fields are not read here, not dropped: they
    stay in the stored JSON). Timestamps are UTC to the millisecond. Made only by
    `indexed_fields_of` and `EncodedEvent.of`, which validate.

    The one list of these fields: the struct the fast way decodes (`_Published`) and the pydantic
    model (`IndexedFieldsModel`) are made from it. Fields with a default come last, so that the
    fast way builds this from the decoded struct's values in one positional call, which costs
    less than the call naming every field that it replaced (`indexed_fields_of` 6.5 µs per bench
    event against 7.5, and 8.5 against 9.7 on a loaded machine, interleaved in the same run).
    """

    id: Annotated[str, _NOT_EMPTY]
    dedupe_key: Annotated[str, _NOT_EMPTY]
    source: str
    timestamp: datetime
    ingested_at: datetime
    service: str
    category: str
    operation: str
    result: Result
    actor_display: str
    actor: IndexedActor
    display_summary: str
    raw_text: str
    schema_version: int = SCHEMA_VERSION
    target_displays: list[str] = msgspec.field(default_factory=list)
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


_FIELDS = msgspec.structs.fields(IndexedFields)
_NAMES = IndexedFields.__struct_fields__
# Read from published JSON as text, then parsed by `_published_time` (see the module docstring).
_TIMES = ("timestamp", "ingested_at")
_TIMESTAMP, _INGESTED_AT = (_NAMES.index(name) for name in _TIMES)
_ACTOR = _NAMES.index("actor")


def _struct_field(field: msgspec.structs.FieldInfo, type_: Any) -> tuple[Any, ...]:
    if field.required:
        return (field.name, type_)
    if field.default_factory is not msgspec.NODEFAULT:
        return (field.name, type_, msgspec.field(default_factory=field.default_factory))
    return (field.name, type_, field.default)


# `IndexedFields` as msgspec reads it from published JSON: the same fields, timestamps still text.
_Published: Any = msgspec.defstruct(
    "_Published",
    [_struct_field(f, str if f.name in _TIMES else f.type) for f in _FIELDS],
    gc=False,
)
_decode_published = msgspec.json.Decoder(_Published).decode


class IndexedActorModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: ActorType = "unknown"


class _IndexedFieldsModel(BaseModel):
    """`IndexedFields` as pydantic validates them: what decides whether a record the fast way
    refused is usable after all, and the reason when it is not. Its fields are `IndexedFields`'
    (`IndexedFieldsModel` adds them), with pydantic's types where they differ."""

    model_config = ConfigDict(extra="ignore")

    @field_validator(*_TIMES, check_fields=False)
    @classmethod
    def _utc_millis(cls, value: datetime) -> datetime:
        # What the normalizer publishes is already UTC to the millisecond: keep it as it is
        # (converting costs more than validating the rest of these fields).
        if value.microsecond % 1000 == 0 and value.utcoffset() == _NO_OFFSET:
            return value
        return to_utc_millis(value)

    def indexed(self) -> IndexedFields:
        values = [getattr(self, name) for name in _NAMES]
        values[_ACTOR] = IndexedActor(values[_ACTOR].type)
        return IndexedFields(*values)


# The struct checks these apart (`source` against the registry, after decoding) or in its own terms.
_MODEL_TYPES: dict[str, Any] = {"source": Source, "actor": IndexedActorModel}


def _model_field(field: msgspec.structs.FieldInfo) -> tuple[Any, Any]:
    """A pydantic field definition for `create_model` with the struct field's type and rules."""
    type_ = field.type
    if field.name in _MODEL_TYPES:
        type_ = _MODEL_TYPES[field.name]
    elif get_origin(type_) is Annotated:  # msgspec's constraints, in pydantic's words
        base, *metadata = get_args(type_)
        rules = [Field(min_length=meta.min_length) for meta in metadata]
        type_ = Annotated[base, *rules]
    if field.required:
        return (type_, ...)
    if field.default_factory is not msgspec.NODEFAULT:
        return (type_, Field(default_factory=field.default_factory))
    return (type_, field.default)


IndexedFieldsModel: type[_IndexedFieldsModel] = create_model(
    "IndexedFieldsModel",
    __base__=_IndexedFieldsModel,
    __module__=__name__,
    **{field.name: _model_field(field) for field in _FIELDS},
)


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
    values = list(_astuple(published))
    timestamp = values[_TIMESTAMP] = _published_time(values[_TIMESTAMP])
    ingested_at = values[_INGESTED_AT] = _published_time(values[_INGESTED_AT])
    if timestamp is None or ingested_at is None or published.source not in _known_sources():
        return None
    return IndexedFields(*values)


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


def _validated(value: bytes) -> _IndexedFieldsModel:
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
