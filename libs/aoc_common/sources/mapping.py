"""The shapes a source's mapper works with: what it returns (`Mapped`), how it refuses a record
(`Rejected`), the part of `mappings.yml` it reads (`SourceMapping`), and the record pieces several
Graph sources share.

Mappers are pure functions of (raw record, that source's mapping section): no I/O, no clock, and
never an exception on bad input other than `Rejected`, whose message becomes the dead letter's reason.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from aoc_common.events import Actor, Result, Target

M = TypeVar("M", bound=BaseModel)

# What every summary template may use; a source adds its own in `SourceSpec.summary_fields`.
PLACEHOLDERS = frozenset(
    {
        "actor",
        "target",
        "targets",
        "member",
        "role",
        "group",
        "operation",
        "service",
        "category",
        "detail",
    }
)

# Graph records: camelCase on the wire, unknown fields kept (Microsoft adds fields without notice and
# the whole record stays in `raw`), wrong types in the fields we read refused.
GRAPH_RECORD = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)


class Rejected(Exception):
    """A record that cannot become an event; the message is the dead-letter reason."""


DetailValue = str | int | float | bool | list[str] | None


@dataclass(frozen=True, slots=True)
class Mapped:
    """What a source mapper extracts, before the common fields are filled in.

    `result`: set when the mapper decides the outcome itself (e.g. from an error code); otherwise the
    normalizer reads `raw_result` through the result words of `mappings.yml`. `result_detail` and
    `details` go to the event as they are (schema v3). `summary_values` fill the source's own
    summary placeholders (`SourceSpec.summary_fields`).
    """

    timestamp: datetime
    operation: str
    raw_category: str | None
    service: str
    raw_result: object
    actor: Actor
    targets: list[Target]
    detail: str
    tenant_id: str | None
    result: Result | None = None
    result_detail: str | None = None
    details: dict[str, DetailValue] = field(default_factory=dict)
    summary_values: dict[str, str] = field(default_factory=dict)


def check_template(template: str, allowed: frozenset[str] = PLACEHOLDERS) -> str:
    """Only plain placeholders from `allowed`: no attribute or index access, no format specs."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"template {template!r}: {error}") from None
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in allowed or spec or conversion:
            names = ", ".join(sorted(allowed))
            raise ValueError(f"template {template!r} uses {{{name}}}; allowed: {names}")
    return template


class SourceMapping(BaseModel):
    """One source's section of `mappings.yml`: service and category labels, summary templates."""

    model_config = ConfigDict(extra="forbid")

    services: dict[str, str] = Field(default_factory=dict)
    default_service: str
    categories: dict[str, str] = Field(default_factory=dict)
    summaries: dict[str, str] = Field(default_factory=dict)

    @field_validator("summaries")
    @classmethod
    def _templates(cls, summaries: dict[str, str]) -> dict[str, str]:
        # Names are checked against the source's placeholders by the whole file's model, which
        # knows which source this section belongs to; here only that every template parses.
        for template in summaries.values():
            try:
                list(string.Formatter().parse(template))
            except ValueError as error:
                raise ValueError(f"template {template!r}: {error}") from None
        return summaries


def validated(model: type[M], value: Any, what: str) -> M:
    """`value` as `model`, or `Rejected` naming the first few problems."""
    try:
        return model.model_validate(value)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or what}: {e['msg']}" for e in error.errors()[:5]
        )
        raise Rejected(f"invalid {what}: {problems}") from None


class ModifiedProperty(BaseModel):
    """An old/new value pair of a Graph audit record's target (directory audits, Intune events)."""

    model_config = GRAPH_RECORD

    display_name: str | None = None
    old_value: str | None = None
    new_value: str | None = None


def modified(properties: list[Any]) -> list[dict[str, Any]]:
    """Modified properties as the event keeps them: Microsoft's names, empty values left out."""
    return [p.model_dump(mode="json", by_alias=True, exclude_none=True) for p in properties]
