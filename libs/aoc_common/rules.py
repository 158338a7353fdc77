"""Alert rules and alerts: the models the alerter evaluates and stores, and the API validates.

A rule is data, not code: field conditions on a `CanonicalEvent` (paths into the event, including its
`raw` record), combined with `all` / `any`, plus an optional threshold and a suppression period. Every
value a user can send is bounded here (path length and shape, list sizes, regular-expression length and
syntax), so a rule that passed validation can never make the alerter slow or crash. Evaluation lives in
the alerter's core; this module must never do I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aoc_common.events import to_utc_millis
from aoc_common.query import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Cursor, timestamp_ms

Severity = Literal["low", "medium", "high", "critical"]
AlertStatus = Literal["open", "acknowledged"]
Operator = Literal["equals", "in", "contains", "regex", "exists", "external_address"]
Scalar = str | int | float | bool | None

MAX_PATH_LENGTH = 200
MAX_PATH_SEGMENTS = 12
MAX_PATTERN_LENGTH = 500
MAX_CONDITIONS = 50
MAX_IN_VALUES = 200

# One path segment: a key, optionally followed by a selector `[Key=Value]` that keeps only the list
# elements whose `Key` equals `Value` (case-insensitive), as in `raw.Parameters[Name=ForwardTo].Value`.
_SEGMENT = re.compile(r"(?P<name>[^.\[\]=]+)(?:\[(?P<key>[^.\[\]=]+)=(?P<value>[^\[\]]*)\])?")


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
        key = found["key"].strip() if found["key"] else None
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


class Condition(BaseModel):
    """One test on the values found at `field` (a path into the event; lists fan out, so a condition
    holds when any value found satisfies it)."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(
        max_length=MAX_PATH_LENGTH, examples=["raw.Parameters[Name=ForwardTo].Value"]
    )
    op: Operator
    value: Scalar | list[Scalar] = None
    negate: bool = Field(default=False, description="Holds when the test does not")
    case_sensitive: bool = False

    @field_validator("field")
    @classmethod
    def _valid_path(cls, path: str) -> str:
        parse_path(path)
        return path

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Condition:
        value = self.value
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

    model_config = ConfigDict(extra="forbid")

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

    count: int = Field(ge=2, le=10_000)
    window_seconds: int = Field(ge=1, le=7 * 86_400)
    distinct: str | None = Field(
        default=None,
        max_length=MAX_PATH_LENGTH,
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
    count: int = Field(ge=1, le=10_000)
    window_seconds: int = Field(ge=1, le=7 * 86_400)
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

    field: str = Field(max_length=MAX_PATH_LENGTH, examples=["actor.location.country_or_region"])
    min_history: int = Field(default=3, ge=1, le=1_000)
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


class RuleSpec(BaseModel):
    """A rule as a client writes it (POST / PUT): everything but the id.

    Either AOC's own `match` (with at most one of `threshold`, `preceded_by` and `new_value`; the
    last two need `group_by`) or a `sigma` rule, whose YAML says everything itself.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    severity: Severity = "medium"
    enabled: bool = True
    match: Match | None = None
    sigma: SigmaSource | None = None
    group_by: str | None = Field(
        default=None,
        max_length=MAX_PATH_LENGTH,
        description="Path whose value groups events for the threshold and the suppression",
    )
    threshold: Threshold | None = None
    preceded_by: PrecededBy | None = None
    new_value: NewValue | None = None
    suppression_seconds: int = Field(
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
            for name in ("threshold", "preceded_by", "new_value", "group_by"):
                if getattr(self, name) is not None:
                    raise ValueError(f"a Sigma rule takes no `{name}`: its YAML says it")
            return self
        kinds = [
            name
            for name in ("threshold", "preceded_by", "new_value")
            if getattr(self, name) is not None
        ]
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
    # Sigma rules: the rule's ATT&CK (and other) tags, references, own id and own level
    # (`informational` … `critical`; `severity` is its AOC equivalent).
    tags: list[str] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)
    sigma_id: str | None = None
    level: str | None = None

    @field_validator("created_at", "acknowledged_at")
    @classmethod
    def _utc_millis(cls, value: datetime | None) -> datetime | None:
        # MongoDB keeps milliseconds: both stores must hand back identical values.
        return None if value is None else to_utc_millis(value)


class AlertQuery(BaseModel):
    """Filters for the alert list (AND), newest first by (created_at, id), keyset-paged."""

    model_config = ConfigDict(extra="forbid")

    status: AlertStatus | None = None
    severity: Severity | None = None
    rule_id: str | None = Field(default=None, max_length=100)
    page_size: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: Cursor | None = None


class AlertPage(BaseModel):
    items: list[Alert]
    next_cursor: str | None = None


def alert_page_from(rows: list[Alert], page_size: int) -> AlertPage:
    """Stores fetch page_size + 1 rows; the extra row only tells whether there is a next page."""
    items = rows[:page_size]
    if len(rows) <= page_size:
        return AlertPage(items=items)
    last = items[-1]
    cursor = Cursor(timestamp_ms=timestamp_ms(last.created_at), id=last.id)
    return AlertPage(items=items, next_cursor=cursor.encode())
