"""The shapes a source's mapper works with: what it returns (`Mapped`), how it refuses a record
(`Rejected`), the part of `mappings.yml` it reads (`SourceMapping`), and the record pieces several
Graph sources share.

Mappers are pure functions of (raw record, that source's mapping section): no I/O, no clock, and
never an exception on bad input other than `Rejected`, whose message becomes the dead letter's reason.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
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


@dataclass(slots=True)
class Mapped:
    """What a source mapper extracts, before the common fields are filled in. (Not `frozen`: a frozen
    dataclass costs five times as much to build, and one is built for every record; treat it as
    read-only all the same.)

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


@lru_cache(maxsize=8192)
def operation_key(operation: str) -> str:
    """How operation names are compared: case-insensitive, without surrounding spaces or a trailing
    period (`Add user.`, `Add User.` and `add user` are one operation). Cached: a tenant's records
    use a few hundred operation names, and every record asks several times."""
    return operation.strip().rstrip(".").strip().casefold()


Templates = list[str]


def _as_templates(value: Any) -> Any:
    """One template or a list of them, the shorter ones last: each is used only when every
    placeholder outside brackets has a value."""
    return [value] if isinstance(value, str) else value


class OutcomeRule(BaseModel):
    """One documented way to decide a record's result.

    It applies to records of the listed `operations` and/or `categories` (raw values: record types,
    directory categories; none listed = every record). It decides either `result` outright, or, when
    `field` (a dotted path into the raw record; lists fan out) holds one of the `values` keys
    (compared case-insensitively as text), the result that key maps to. `why` says what the record
    documents that makes this the outcome; it is part of the file, not a comment, so that it is kept.
    """

    model_config = ConfigDict(extra="forbid")

    why: str = Field(min_length=1)
    operations: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    field: str | None = None
    values: dict[str, Result] = Field(default_factory=dict)
    result: Result | None = None

    @model_validator(mode="after")
    def _decides_something(self) -> OutcomeRule:
        if (self.result is None) == (not self.values):
            raise ValueError("a rule needs either `result` or `field` with `values`")
        if self.values and not self.field:
            raise ValueError("`values` need the `field` they are read from")
        return self


class Names(BaseModel):
    """Who well-known ids are: first-party application ids and system accounts (SIDs, service
    names), shown by name instead of as a GUID or a SID."""

    model_config = ConfigDict(extra="forbid")

    applications: dict[str, str] = Field(default_factory=dict)
    system_accounts: dict[str, str] = Field(default_factory=dict)

    def application(self, app_id: str | None) -> str | None:
        return self.applications.get(app_id.lower()) if app_id else None


class SourceMapping(BaseModel):
    """One source's section of `mappings.yml`: labels, result rules and summary templates."""

    model_config = ConfigDict(extra="forbid")

    services: dict[str, str] = Field(default_factory=dict)
    default_service: str
    categories: dict[str, str] = Field(default_factory=dict)
    # A raw category the table does not know yet, e.g. "RecordType {value}"; counted in metrics.
    unknown_category: str = "{value}"
    summaries: dict[str, Templates] = Field(default_factory=dict)
    category_summaries: dict[str, Templates] = Field(default_factory=dict)
    fallback_summaries: Templates = Field(default_factory=list)
    # Read before the result words (they beat what Microsoft's status field says)…
    result_overrides: list[OutcomeRule] = Field(default_factory=list)
    # …and after them, when neither the overrides nor the status field decided.
    result_defaults: list[OutcomeRule] = Field(default_factory=list)
    # Source-specific label tables a mapper reads (e.g. Intune resource types, Copilot app hosts).
    labels: dict[str, dict[str, str]] = Field(default_factory=dict)
    # The file's well-known names (its top-level `names:`), handed to every source when the file is
    # loaded; a plain field because mappers read it for every record.
    names: Names = Field(default_factory=Names, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _names_come_from_the_top(cls, value: Any) -> Any:
        if isinstance(value, dict) and "names" in value:
            raise ValueError("names are set once, at the top level of the file")
        return value

    @field_validator("summaries", "category_summaries", mode="before")
    @classmethod
    def _template_lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: _as_templates(templates) for key, templates in value.items()}
        return value

    @field_validator("fallback_summaries", mode="before")
    @classmethod
    def _fallback_list(cls, value: Any) -> Any:
        return _as_templates(value)

    @field_validator("summaries", "category_summaries", "fallback_summaries")
    @classmethod
    def _templates_parse(cls, value: Any) -> Any:
        # Names are checked against the source's placeholders by the whole file's model, which
        # knows which source this section belongs to; here only that every template parses.
        lists = value.values() if isinstance(value, dict) else [value]
        for templates in lists:
            if not templates:
                raise ValueError("a template list must not be empty")
            for template in templates:
                try:
                    list(string.Formatter().parse(template))
                except ValueError as error:
                    raise ValueError(f"template {template!r}: {error}") from None
        return value

    def label(self, table: str, key: str | None) -> str | None:
        return self.labels.get(table, {}).get(key) if key else None


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


# --- reading records tolerantly: an optional field of an unexpected shape is normalised or ignored,
# never a reason to drop the record (only the fields an event cannot do without are required) ---

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value))


def as_str(value: Any) -> str | None:
    """A non-empty string field as it came, else None: for Graph records, whose strings are clean
    (`text` also trims and reads numbers, at twice the cost)."""
    return value if value.__class__ is str and value else None


def text(value: Any) -> str | None:
    """A non-empty string as it reads (numbers as digits); anything else None."""
    if value.__class__ is str:
        value = value.strip()
        return value or None
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float):
        return str(value)
    return None


def decoded(value: Any) -> Any:
    """A JSON-encoded string (`"[...]"`, `"{...}"`, `"\\"name\\""`) as what it encodes; else as is.

    Microsoft writes some values as JSON text inside JSON: modified properties, Exchange rule
    actions, alert data, Power BI operation properties."""
    if isinstance(value, str) and value[:1] in ("[", "{", '"'):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def as_list(value: Any) -> list[Any]:
    """A list however it came: a list, a JSON-encoded list, or one object on its own."""
    value = decoded(value)
    if isinstance(value, list):
        return value
    if value is None or value == "":
        return []
    return [value]


def as_dict(value: Any) -> dict[str, Any]:
    value = decoded(value)
    return value if isinstance(value, dict) else {}


def plain(value: Any) -> str | None:
    """A (possibly JSON-encoded) value as text an analyst reads: `"[\\"x\\"]"` → `x`, lists joined."""
    value = decoded(value)
    if isinstance(value, list):
        parts = [p for p in (plain(v) for v in value) if p]
        return ", ".join(parts) or None
    return text(value)


# `-Name "value"`, `-Name value`, `-Name ("a","b")`, `-Switch`: the PowerShell form some Exchange and
# Security & Compliance records use for Parameters instead of Name/Value pairs.
_POWERSHELL_PARAMETER = re.compile(
    r'-(?P<name>[A-Za-z][\w-]*)(?:[: ]+(?P<value>"(?:[^"\\]|\\.)*"|\([^)]*\)|\$\w+|[^\s-][^\s]*))?'
)


def name_value_pairs(value: Any) -> list[tuple[str, str]]:
    """Parameters (or other Name/Value lists) as pairs, whatever form they came in."""
    value = decoded(value)
    pairs: list[tuple[str, str]] = []
    if isinstance(value, str):
        for match in _POWERSHELL_PARAMETER.finditer(value):
            raw = match.group("value")
            if raw is None:
                pairs.append((match.group("name"), "True"))
                continue
            if raw.startswith('"'):
                raw = raw[1:-1]
            elif raw.startswith("("):
                raw = ",".join(
                    part.strip().strip('"') for part in raw[1:-1].split(",") if part.strip()
                )
            pairs.append((match.group("name"), raw))
        return pairs
    if isinstance(value, dict):
        if "Name" in value:
            value = [value]
        else:
            return [(str(k), plain(v) or "") for k, v in value.items()]
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict):
            name = text(item.get("Name"))
            if name is not None:
                pairs.append((name, plain(item.get("Value")) or ""))
    return pairs


def parse_time(value: Any, field_name: str, what: str) -> datetime:
    """A record's time in any ISO 8601 form Microsoft writes (with or without a zone, up to seven
    fractional digits, a space instead of T); `Rejected` when it is missing or not a date."""
    if value is None:
        raise Rejected(f"invalid {what}: {field_name}: Field required")
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    raise Rejected(f"invalid {what}: {field_name}: Input should be a valid datetime: {value!r:.40}")


def list_of_text(values: Any) -> list[str]:
    return [t for t in (plain(v) for v in as_list(values)) if t]


def first_few(names: list[str], shown: int = 3, quote: bool = False) -> str:
    """`a, b, c and 2 more`: the first `shown` names, and how many more there are."""
    if quote:
        names = [f'"{n}"' for n in names]
    listed = ", ".join(names[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")


def modified_properties(value: Any) -> list[dict[str, Any]]:
    """A Graph target's modifiedProperties as the event keeps them: Microsoft's names, values as
    they came (JSON-encoded text), empty ones left out, anything that is not an object skipped."""
    return [
        {k: v for k in ("displayName", "oldValue", "newValue") if (v := p.get(k)) is not None}
        for p in as_list(value)
        if isinstance(p, dict)
    ]
