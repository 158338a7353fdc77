"""Alert rules and alerts: the models the alerter evaluates and stores, and the API validates.

A rule is data, not code: field conditions on a `CanonicalEvent` (paths into the event, including its
`raw` record), combined with `all` / `any`, plus an optional threshold and a suppression period. Every
value a user can send is bounded here (path length and shape, list sizes, regular-expression length and
syntax), so a rule that passed validation can never make the alerter slow or crash. Evaluation lives in
the alerter's core; this module must never do I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

import regex
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from aoc_common.events import to_utc_millis
from aoc_common.query import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Cursor, CursorToken, timestamp_ms
from aoc_common.text_patterns import WHITESPACE

Severity = Literal["low", "medium", "high", "critical"]
AlertStatus = Literal["open", "acknowledged"]
Operator = Literal["equals", "in", "contains", "regex", "exists", "external_address"]
Scalar = str | int | float | bool | None

MAX_PATH_LENGTH = 200
MAX_PATH_SEGMENTS = 12
MAX_PATTERN_LENGTH = 500
MAX_CONDITIONS = 50
MAX_IN_VALUES = 200
# Numbers a rule may compare with: what every store keeps (MongoDB: 64-bit integers).
MIN_RULE_NUMBER = -(2**63)
MAX_RULE_NUMBER = 2**63 - 1

# One path segment: a key, optionally followed by a selector `[Key=Value]` that keeps only the list
# elements whose `Key` equals `Value` (case-insensitive), as in `raw.Parameters[Name=ForwardTo].Value`.
_SEGMENT = re.compile(r"(?P<name>[^.\[\]=]+)(?:\[(?P<key>[^.\[\]=]+)=(?P<value>[^\[\]]*)\])?")
# The same grammar as one pattern, for the API's document: names and keys hold a non-space character.
# Unambiguous (linear to match): leading spaces, then the first character that is not one.
_NAME = rf"[{WHITESPACE}]*[^.\[\]={WHITESPACE}][^.\[\]=]*"
_SEGMENT_PATTERN = rf"{_NAME}(\[{_NAME}=[^\[\]]*\])?"
PATH_PATTERN = rf"^{_SEGMENT_PATTERN}(\.{_SEGMENT_PATTERN}){{0,{MAX_PATH_SEGMENTS - 1}}}$"


@dataclass(frozen=True, slots=True)
class PathSegment:
    name: str
    select_key: str | None = None
    select_value: str | None = None


@lru_cache(maxsize=4096)
def parse_path(path: str) -> tuple[PathSegment, ...]:
    """`a.b[Key=Value].c` → segments; raises ValueError naming what is wrong.

    Values inside a selector may contain dots (`[Operation=Add member to role.]`), so the path is
    scanned segment by segment rather than split on dots.
    """
    if not path or len(path) > MAX_PATH_LENGTH:
        raise ValueError(f"a field path has 1 to {MAX_PATH_LENGTH} characters")
    segments: list[PathSegment] = []
    position = 0
    while True:
        found = _SEGMENT.match(path, position)
        if found is None:
            raise ValueError(f"field path {path!r} is not valid at character {position}")
        name = found["name"].strip()
        if not name:
            raise ValueError(f"field path {path!r} has an empty segment")
        key = found["key"].strip() if found["key"] is not None else None
        if key == "":
            raise ValueError(f"field path {path!r} has a selector without a key")
        segments.append(PathSegment(name, key, found["value"] if key else None))
        position = found.end()
        if position == len(path):
            break
        if path[position] != ".":
            raise ValueError(f"field path {path!r} is not valid at character {position}")
        position += 1
    if len(segments) > MAX_PATH_SEGMENTS:
        raise ValueError(f"a field path has at most {MAX_PATH_SEGMENTS} segments")
    return tuple(segments)


def resolve_path(document: Any, path: str) -> list[Any]:
    """Every value at `path` in a JSON-like document; lists fan out at every step (as in MongoDB),
    and a `[Key=Value]` selector keeps the list elements whose `Key` equals `Value` (any case)."""
    current: list[Any] = [document]
    for segment in parse_path(path):
        found: list[Any] = []
        for item in current:
            if not isinstance(item, dict) or segment.name not in item:
                continue
            value = item[segment.name]
            found.extend(value if isinstance(value, list) else [value])
        if segment.select_key is not None:
            wanted = (segment.select_value or "").casefold()
            found = [
                item
                for item in found
                if isinstance(item, dict)
                and _as_text(item.get(segment.select_key)).casefold() == wanted
            ]
        current = found
    values: list[Any] = []
    for value in current:
        values.extend(value if isinstance(value, list) else [value])
    return [value for value in values if value is not None]


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str, case_sensitive: bool) -> regex.Pattern[str]:
    """Compiled with the `regex` package, whose searches take a timeout (Python's `re` cannot be
    interrupted, so one catastrophic pattern would stall the alerter)."""
    return regex.compile(pattern, 0 if case_sensitive else regex.IGNORECASE)


_SCALAR_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string"},
        {"type": "number", "minimum": MIN_RULE_NUMBER, "maximum": MAX_RULE_NUMBER},
        {"type": "boolean"},
        {"type": "null"},
    ]
}
_TEXT_VALUE_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 500}
# What each operator takes as `value` (checked by `Condition._value_fits_operator`).
_VALUE_BY_OPERATOR: dict[str, tuple[dict[str, Any], bool]] = {
    "equals": (_SCALAR_SCHEMA, False),
    "in": (
        {"type": "array", "items": _SCALAR_SCHEMA, "minItems": 1, "maxItems": MAX_IN_VALUES},
        True,
    ),
    "contains": (_TEXT_VALUE_SCHEMA, True),
    "regex": ({**_TEXT_VALUE_SCHEMA, "format": "regex"}, True),
    "exists": ({"type": ["boolean", "null"]}, False),
    "external_address": ({"type": "null"}, False),
}


def _document_value_by_operator(schema: dict[str, Any]) -> None:
    schema["oneOf"] = [
        {
            "properties": {"op": {"const": operator}, "value": value},
            "required": ["op", "value"] if required else ["op"],
        }
        for operator, (value, required) in _VALUE_BY_OPERATOR.items()
    ]


def _check_storable(value: Scalar) -> None:
    """Every store keeps the value exactly: 64-bit integers, finite numbers in the same range
    (compared as floats, as a JSON Schema validator compares them)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    within = (
        MIN_RULE_NUMBER <= value <= MAX_RULE_NUMBER
        if isinstance(value, int)
        else math.isfinite(value) and float(MIN_RULE_NUMBER) <= value <= float(MAX_RULE_NUMBER)
    )
    if not within:
        raise ValueError(f"numbers in a rule lie between {MIN_RULE_NUMBER} and {MAX_RULE_NUMBER}")


def _not_bool_or_text(value: Any) -> Any:
    """A JSON `false` is not the number 0, nor `"5"` the number 5 (5.0 is)."""
    if isinstance(value, bool | str):
        raise ValueError("expected a number")
    return value


# As the document says: a count is a JSON integer, a switch a JSON boolean.
WholeNumber = Annotated[int, BeforeValidator(_not_bool_or_text)]


class Condition(BaseModel):
    """One test on the values found at `field` (a path into the event; lists fan out, so a condition
    holds when any value found satisfies it)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_document_value_by_operator)

    field: str = Field(
        min_length=1,
        max_length=MAX_PATH_LENGTH,
        examples=["raw.Parameters[Name=ForwardTo].Value"],
        json_schema_extra={"pattern": PATH_PATTERN},
    )
    op: Operator
    value: Scalar | list[Scalar] = None
    negate: StrictBool = Field(default=False, description="Holds when the test does not")
    case_sensitive: StrictBool = False

    @field_validator("field")
    @classmethod
    def _valid_path(cls, path: str) -> str:
        parse_path(path)
        return path

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Condition:
        value = self.value
        for scalar in value if isinstance(value, list) else [value]:
            _check_storable(scalar)
        if self.op == "equals" and isinstance(value, list):
            raise ValueError("`equals` takes one value (use `in` for a list)")
        if self.op == "in" and not (isinstance(value, list) and 0 < len(value) <= MAX_IN_VALUES):
            raise ValueError(f"`in` takes a list of 1 to {MAX_IN_VALUES} values")
        if self.op == "contains" and not (isinstance(value, str) and 0 < len(value) <= 500):
            raise ValueError("`contains` takes a string of 1 to 500 characters")
        if self.op == "regex":
            if not (isinstance(value, str) and 0 < len(value) <= MAX_PATTERN_LENGTH):
                raise ValueError(f"`regex` takes a pattern of 1 to {MAX_PATTERN_LENGTH} characters")
            try:
                compile_pattern(value, self.case_sensitive)
            except regex.error as error:
                raise ValueError(f"`regex` pattern does not compile: {error}") from None
        if self.op == "exists" and not isinstance(value, bool | None):
            raise ValueError("`exists` takes true, false or nothing (true)")
        if self.op == "external_address" and value is not None:
            raise ValueError("`external_address` takes no value")
        return self


class Match(BaseModel):
    """Every `all` condition holds, and at least one `any` condition does (when there are any)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"properties": {"all": {"minItems": 1}}, "required": ["all"]},
                {"properties": {"any": {"minItems": 1}}, "required": ["any"]},
            ]
        },
    )

    all: list[Condition] = Field(default_factory=list, max_length=MAX_CONDITIONS)
    any: list[Condition] = Field(default_factory=list, max_length=MAX_CONDITIONS)

    @model_validator(mode="after")
    def _not_empty(self) -> Match:
        if not self.all and not self.any:
            raise ValueError("a match needs at least one condition in `all` or `any`")
        return self


class Threshold(BaseModel):
    """Alert when `count` matching events with the same `group_by` value fall within `window_seconds`."""

    model_config = ConfigDict(extra="forbid")

    count: WholeNumber = Field(ge=2, le=10_000)
    window_seconds: WholeNumber = Field(ge=1, le=7 * 86_400)
    distinct: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PATH_LENGTH,
        json_schema_extra={"pattern": PATH_PATTERN},
        description="Count distinct values at this path rather than events (e.g. users per IP)",
    )

    @field_validator("distinct")
    @classmethod
    def _valid_distinct_path(cls, path: str | None) -> str | None:
        if path is not None:
            parse_path(path)
        return path


class PrecededBy(BaseModel):
    """Alert on an event matching the rule only when at least `count` events matching `match`, in
    the same `group_by` group, happened within `window_seconds` before it (event time, so the order
    the events arrive in does not matter): e.g. a success after many failures for one user."""

    model_config = ConfigDict(extra="forbid")

    match: Match
    count: WholeNumber = Field(ge=1, le=10_000)
    window_seconds: WholeNumber = Field(ge=1, le=7 * 86_400)
    label: str = Field(
        default="matching events",
        min_length=1,
        max_length=100,
        description="What the preceding events are, for the alert summary (e.g. failed sign-ins)",
    )


class NewValue(BaseModel):
    """Alert on an event whose value at `field` its `group_by` group never had before (among the
    earlier events matching the rule, in event time), once the group has at least `min_history`
    earlier matching events: a group seen for the first time is learnt, not alerted on."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(
        min_length=1,
        max_length=MAX_PATH_LENGTH,
        examples=["actor.location.country_or_region"],
        json_schema_extra={"pattern": PATH_PATTERN},
    )
    min_history: WholeNumber = Field(default=3, ge=1, le=1_000)
    label: str = Field(
        default="value", min_length=1, max_length=100, description="What the value is (country…)"
    )

    @field_validator("field")
    @classmethod
    def _valid_path(cls, path: str) -> str:
        parse_path(path)
        return path


MAX_SIGMA_YAML = 200_000


class SigmaSource(BaseModel):
    """The Sigma rule an AOC rule runs: its YAML as accepted (the rule, and for a correlation the
    rules it refers to), compiled by the alerter with AOC's pySigma pipeline, plus what an analyst
    and an alert read about it. Written by the Sigma loaders (`aoc_common.sigma`), which compile the
    text before storing it, so a stored Sigma rule is one AOC can run."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=100, description="The Sigma rule's own `id`")
    yaml: str = Field(min_length=1, max_length=MAX_SIGMA_YAML)
    level: str = Field(default="medium", max_length=20)
    status: str = Field(default="", max_length=20)
    logsource: str = Field(default="", max_length=100, examples=["m365/exchange"])
    kind: str = Field(default="detection", max_length=30, examples=["detection", "event_count"])
    tags: list[str] = Field(default_factory=list, max_length=100)
    references: list[str] = Field(default_factory=list, max_length=50)
    origin: str = Field(default="", max_length=1000, description="File or `api` it came from")


STATE_KINDS = ("threshold", "preceded_by", "new_value")


def _document_one_kind_of_state(schema: dict[str, Any]) -> None:
    """State in the API's document what `RuleSpec._one_kind_of_state` checks: `match` or `sigma`;
    a Sigma rule without state or grouping; at most one kind of state; grouping where it needs it."""

    def given(*names: str) -> dict[str, Any]:
        return {"properties": {name: {"type": "object"} for name in names}, "required": [*names]}

    pairs = [(a, b) for i, a in enumerate(STATE_KINDS) for b in STATE_KINDS[i + 1 :]]
    without_state = {"properties": {name: {"type": "null"} for name in (*STATE_KINDS, "group_by")}}
    schema["allOf"] = [
        {"anyOf": [given("match"), given("sigma")]},
        {"not": given("match", "sigma")},
        {"if": given("sigma"), "then": without_state},
        *({"not": given(a, b)} for a, b in pairs),
        *(
            {
                "if": given(kind),
                "then": {"properties": {"group_by": {"type": "string"}}, "required": ["group_by"]},
            }
            for kind in STATE_KINDS[1:]
        ),
    ]


class RuleSpec(BaseModel):
    """A rule as a client writes it (POST / PUT): everything but the id.

    Either AOC's own `match` (with at most one of `threshold`, `preceded_by` and `new_value`; the
    last two need `group_by`) or a `sigma` rule, whose YAML says everything itself.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=_document_one_kind_of_state)

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    severity: Severity = "medium"
    enabled: StrictBool = True
    match: Match | None = None
    sigma: SigmaSource | None = None
    group_by: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PATH_LENGTH,
        json_schema_extra={"pattern": PATH_PATTERN},
        description="Path whose value groups events for the threshold and the suppression",
    )
    threshold: Threshold | None = None
    preceded_by: PrecededBy | None = None
    new_value: NewValue | None = None
    suppression_seconds: WholeNumber = Field(
        default=0,
        ge=0,
        le=30 * 86_400,
        description="After an alert, matches in the same group raise no new alert for this long",
    )

    @field_validator("group_by")
    @classmethod
    def _valid_group_path(cls, path: str | None) -> str | None:
        if path is not None:
            parse_path(path)
        return path

    @model_validator(mode="after")
    def _one_kind_of_state(self) -> RuleSpec:
        if (self.match is None) == (self.sigma is None):
            raise ValueError("a rule has either `match` (AOC's own rule) or `sigma`")
        if self.sigma is not None:
            for name in (*STATE_KINDS, "group_by"):
                if getattr(self, name) is not None:
                    raise ValueError(f"a Sigma rule takes no `{name}`: its YAML says it")
            return self
        kinds = [name for name in STATE_KINDS if getattr(self, name) is not None]
        if len(kinds) > 1:
            raise ValueError(f"a rule takes one of threshold, preceded_by, new_value: {kinds}")
        if kinds and kinds[0] != "threshold" and self.group_by is None:
            raise ValueError(f"`{kinds[0]}` needs `group_by` (e.g. actor.user_principal_name)")
        return self


class Rule(RuleSpec):
    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")


class Alert(BaseModel):
    """One alert, as stored, published on `aoc.alerts` and served by `/api/alerts`."""

    model_config = ConfigDict(extra="forbid")

    id: str
    rule_id: str
    rule_name: str
    severity: Severity
    status: AlertStatus = "open"
    created_at: datetime
    summary: str
    group_value: str | None = None
    event_ids: list[str]
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    # When it happened, beside when it was noticed: the timestamp of the event that raised the alert
    # (for a threshold rule, the one that reached the count). `created_at` is the alerter's clock, the
    # same for every alert of a replay. None on alerts stored before it was recorded.
    event_at: datetime | None = None
    # Sigma rules: the rule's ATT&CK (and other) tags, references, own id and own level
    # (`informational` … `critical`; `severity` is its AOC equivalent).
    tags: list[str] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)
    sigma_id: str | None = None
    level: str | None = None

    @field_validator("created_at", "acknowledged_at", "event_at")
    @classmethod
    def _utc_millis(cls, value: datetime | None) -> datetime | None:
        # MongoDB keeps milliseconds: both stores must hand back identical values.
        return None if value is None else to_utc_millis(value)


class AlertQuery(BaseModel):
    """Filters for the alert list (AND), newest first by (created_at, id), keyset-paged."""

    model_config = ConfigDict(extra="forbid")

    status: AlertStatus | None = Field(default=None, description="open | acknowledged")
    severity: Severity | None = Field(default=None, description="low | medium | high | critical")
    rule_id: str | None = Field(default=None, max_length=100, description="Alerts of this rule")
    page_size: int = Field(
        default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Alerts per page"
    )
    cursor: CursorToken = None


class AlertPage(BaseModel):
    items: list[Alert]
    next_cursor: str | None = None


class AlertCount(BaseModel):
    """How many alerts one rule raised with one severity and status: what the alerts view's tabs,
    its group-by-rule list and the overview count from."""

    rule_id: str
    rule_name: str
    severity: Severity
    status: AlertStatus
    count: int


def sorted_alert_counts(counts: Iterable[AlertCount]) -> list[AlertCount]:
    """The one order both stores answer in: by rule name, rule id, severity, status."""
    return sorted(counts, key=lambda c: (c.rule_name, c.rule_id, c.severity, c.status))


def alert_page_from(rows: list[Alert], page_size: int) -> AlertPage:
    """Stores fetch page_size + 1 rows; the extra row only tells whether there is a next page."""
    items = rows[:page_size]
    if len(rows) <= page_size:
        return AlertPage(items=items)
    last = items[-1]
    cursor = Cursor(timestamp_ms=timestamp_ms(last.created_at), id=last.id)
    return AlertPage(items=items, next_cursor=cursor.encode())
