"""The canonical event and the raw envelope: the two message shapes every service agrees on.

`aoc.events` is a product that downstream teams subscribe to, so `CanonicalEvent` changes only
together with `SCHEMA_VERSION`. Timestamps are UTC and truncated to milliseconds, because that is
what MongoDB keeps: every store then sorts and pages on exactly the same values.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

SCHEMA_VERSION = 3

# Whether the directory objects an event names carry readable names (see `CanonicalEvent.enrichment`).
Enrichment = Literal["complete", "pending", "off"]


class _RegisteredSource:
    """A source id from the registry (`aoc_common.sources`): a string checked against the known ids,
    whose JSON Schema lists them as an enum. Looked up lazily, because the sources' modules use this
    module's models."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source_type: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(_known_source, core_schema.str_schema())

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "enum": list(_source_ids())}


@cache
def _source_ids() -> tuple[str, ...]:
    from aoc_common.sources import SOURCES

    return SOURCES


def _known_source(value: str) -> str:
    if value not in _source_ids():
        raise ValueError(f"unknown source {value!r}; known: {', '.join(_source_ids())}")
    return value


# Which Microsoft log a record came from: one of `aoc_common.sources.SOURCES`.
Source = Annotated[str, _RegisteredSource]

# What happened, as analysts filter on it. "partial": Microsoft says part of it was done
# (`PartiallySucceeded`); "unknown" only when nothing in the record decides it.
Result = Literal["success", "failure", "partial", "unknown"]
RESULTS: tuple[Result, ...] = ("success", "failure", "partial", "unknown")
ActorType = Literal["user", "app", "system", "unknown"]

# Namespace for event ids derived from dedupe keys: the same record always gets the same id.
_EVENT_ID_NAMESPACE = uuid.UUID("6f1f8e52-4f0c-4d2e-9c1a-0a0c0a0c0a0c")
_EVENT_ID_PREFIX = _EVENT_ID_NAMESPACE.bytes


def to_utc_millis(value: datetime) -> datetime:
    """UTC, millisecond precision; naive datetimes are taken to be UTC (as Microsoft's APIs
    mean)."""
    if value.tzinfo is UTC and not value.microsecond % 1000:
        return value  # already converted: every event passes here more than once
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def utc_now() -> datetime:
    return to_utc_millis(datetime.now(UTC))


def event_id_for(dedupe_key: str) -> str:
    """A stable, URL-safe id: re-ingesting a record never changes the id analysts bookmarked.

    The name-based UUID (version 5) of `dedupe_key`, as `uuid.uuid5` computes it, without building
    the UUID object (a third of the cost; this runs for every event)."""
    name = _EVENT_ID_PREFIX + dedupe_key.encode()
    # SHA-1 because UUID version 5 is defined with it: an id, not a security boundary.
    digest = bytearray(hashlib.sha1(name, usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class GeoLocation(BaseModel):
    """Where a sign-in or request came from, as Microsoft resolved it (v3)."""

    model_config = ConfigDict(extra="forbid")

    city: str | None = None
    state: str | None = None
    country_or_region: str | None = None


class Actor(BaseModel):
    """Who did it: a user (UPN), an application / service principal, or the system itself."""

    model_config = ConfigDict(extra="forbid")

    type: ActorType = "unknown"
    id: str | None = None
    display_name: str | None = None
    user_principal_name: str | None = None
    app_id: str | None = None
    ip_address: str | None = None
    # v3: the client the actor used and where it was, when the record says.
    user_agent: str | None = None
    location: GeoLocation | None = None


class Target(BaseModel):
    """What it was done to; `modified_properties` keeps old/new values as Microsoft reports them."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = None
    id: str | None = None
    display_name: str | None = None
    user_principal_name: str | None = None
    modified_properties: list[dict[str, Any]] = Field(default_factory=list)


class Comment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    author: str
    text: str
    created_at: datetime

    @field_validator("created_at")
    @classmethod
    def _utc_millis(cls, value: datetime) -> datetime:
        # Same precision as the event's timestamps: MongoDB keeps milliseconds, so a comment must
        # read back identically from either store.
        return to_utc_millis(value)


class CanonicalEvent(BaseModel):
    """One admin action, whatever Microsoft API reported it. Published on `aoc.events`."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    id: str
    dedupe_key: str
    source: Source
    tenant_id: str | None = None
    timestamp: datetime
    ingested_at: datetime
    service: str
    category: str
    operation: str
    result: Result
    actor_display: str
    target_displays: list[str] = Field(default_factory=list)
    display_summary: str
    actor: Actor
    targets: list[Target] = Field(default_factory=list)
    raw: dict[str, Any]
    raw_text: str
    # v2: "pending" = Graph did not answer, some ids are shown as ids; `aoc renormalize` publishes a
    # resolved version later. "off" = ids without names and enrichment not configured.
    enrichment: Enrichment = "complete"
    # v3: Microsoft's own words for the outcome (`ResultStatus`, `result`, a sign-in's error code and
    # failure reason), kept beside the normalised `result` for the detail view.
    result_detail: str | None = None
    # v3: the few source-specific facts an analyst reads first (a sign-in's application, client app,
    # conditional access status and risk; a DLP match's policy and sensitive types; the agent that
    # wrote a compliance record). Flat: names in snake_case, values scalars or lists of strings.
    details: dict[str, str | int | float | bool | list[str] | None] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    comments: list[Comment] = Field(default_factory=list)

    @field_validator("timestamp", "ingested_at")
    @classmethod
    def _utc_millis(cls, value: datetime) -> datetime:
        return to_utc_millis(value)


class RawEnvelope(BaseModel):
    """What a collector publishes on `aoc.raw.<source>`: one record as Microsoft returned it."""

    model_config = ConfigDict(extra="forbid")

    source: Source
    tenant_id: str | None = None
    fetched_at: datetime
    payload: Any = Field(description="The record as the API returned it (a JSON object when valid)")
