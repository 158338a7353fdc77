"""Loads and checks `mappings.yml`: labels and summary templates that turn raw records into readable events.

A broken file must be rejected with a message that says what is wrong and where, never half-applied:
`load_mappings` either returns a complete, checked `Mappings` or raises `MappingError`. A running
normalizer picks up an edited file (`LiveMappings`: on a change of its mtime or size, or on SIGHUP); a
broken edit is logged and refused, and the last good mapping stays in force.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from aoc_common.events import Result, Source
from aoc_common.logging import get_logger
from aoc_common.metrics import MAPPINGS_RELOADS
from aoc_common.sources import SOURCES, source_spec
from aoc_common.sources.mapping import (
    PLACEHOLDERS,
    Names,
    OutcomeRule,
    SourceMapping,
    check_template,
    decoded,
    operation_key,
)

log = get_logger(__name__)


class MappingError(ValueError):
    """mappings.yml cannot be used; the message names the file and the offending entry."""


@cache
def placeholders_of(source: Source) -> frozenset[str]:
    """What `source`'s summary templates may use: the common placeholders and its own."""
    return PLACEHOLDERS | frozenset(source_spec(source).summary_fields)


# Placeholders every event fills, so a template needing only these always renders.
ALWAYS_FILLED = frozenset({"actor", "operation", "service", "category"})
# "( … {x} … )": an optional part, left out when one of its placeholders has no value.
_OPTIONAL_PART = re.compile(r"\s*\(([^()]*\{[a-z_]+\}[^()]*)\)")
_NAME = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True, slots=True)
class Template:
    """A summary template, compiled once: which placeholders it cannot do without, and its optional
    bracketed parts. `render` returns None when a required value is missing, so the caller falls
    back to the next, shorter template instead of writing a broken sentence."""

    text: str
    required: tuple[str, ...]
    parts: tuple[tuple[str, tuple[str, ...]], ...]  # (format text, names that must be non-empty)

    @classmethod
    def compile(cls, text: str) -> Template:
        parts: list[tuple[str, tuple[str, ...]]] = []
        position = 0
        for optional in _OPTIONAL_PART.finditer(text):
            parts.append((text[position : optional.start()], ()))
            parts.append((optional.group(0), tuple(_NAME.findall(optional.group(1)))))
            position = optional.end()
        parts.append((text[position:], ()))
        required = tuple(
            dict.fromkeys(
                name for part, names in parts if not names for name in _NAME.findall(part)
            )
        )
        return cls(text, required, tuple(p for p in parts if p[0]))

    def render(self, values: Mapping[str, str]) -> str | None:
        for name in self.required:
            if not values.get(name):
                return None
        if len(self.parts) == 1:
            return self.parts[0][0].format_map(values)
        return "".join(
            part.format_map(values)
            for part, names in self.parts
            if all(values.get(n) for n in names)
        )


def _compiled(templates: list[str]) -> tuple[Template, ...]:
    return tuple(Template.compile(t) for t in templates)


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str
    category: str
    actor: str
    summary: str
    summary_no_target: str

    @field_validator("summary", "summary_no_target")
    @classmethod
    def _templates(cls, template: str) -> str:
        return check_template(template)

    @field_validator("summary_no_target")
    @classmethod
    def _always_renders(cls, template: str) -> str:
        missing = set(Template.compile(template).required) - ALWAYS_FILLED
        if missing:
            raise ValueError(
                f"the last fallback {template!r} must render for every event; it needs "
                f"{', '.join(sorted(missing))}, which can be empty"
            )
        return template


class ResultWords(BaseModel):
    """Microsoft's own outcome words (compared case-insensitively; JSON booleans read as words)."""

    model_config = ConfigDict(extra="forbid")

    success: list[str]
    failure: list[str]
    partial: list[str] = Field(default_factory=list)
    # Words that say the outcome is not decided yet (kept as result_detail, result stays unknown).
    undecided: list[str] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Rule:
    """An `OutcomeRule` prepared for the hot path."""

    operations: frozenset[str]
    categories: frozenset[str]
    path: tuple[str, ...]
    values: Mapping[str, Result]
    result: Result | None

    def applies(self, operation: str, category: str) -> bool:
        return (not self.operations or operation in self.operations) and (
            not self.categories or category in self.categories
        )

    def decide(self, record: Mapping[str, Any]) -> tuple[Result, str] | None:
        if self.result is not None:
            return self.result, ""
        for found in _values_at(record, self.path):
            word = _word(found)
            if word in self.values:
                return self.values[word], f"{'.'.join(self.path)}: {_text(found)}"
        return None


def _values_at(value: Any, path: tuple[str, ...]) -> list[Any]:
    """Every value at `path`, lists fanning out; JSON-encoded strings on the way are read as JSON."""
    current = [value]
    for key in path:
        following: list[Any] = []
        for item in current:
            item = decoded(item)
            for element in item if isinstance(item, list) else [item]:
                element = decoded(element)
                if isinstance(element, dict) and key in element:
                    following.append(element[key])
        current = following
    flat: list[Any] = []
    for item in current:
        flat.extend(item if isinstance(item, list) else [item])
    return flat


def _word(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip().casefold()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _prepare_rule(rule: OutcomeRule) -> _Rule:
    return _Rule(
        operations=frozenset(operation_key(o) for o in rule.operations),
        categories=frozenset(rule.categories),
        path=tuple(rule.field.split(".")) if rule.field else (),
        values={_word(k): v for k, v in rule.values.items()},
        result=rule.result,
    )


@dataclass(slots=True)
class PreparedSource:
    """One source's section of the file, indexed for the hot path (every record goes through
    these methods): plain attributes, compiled templates, result rules grouped by what they need."""

    operations: Mapping[str, str]  # operation key → canonical spelling
    summaries: Mapping[str, tuple[Template, ...]]  # operation key → templates
    category_summaries: Mapping[str, tuple[Template, ...]]
    fallback: tuple[Template, ...]  # the source's fallback, then the file's defaults
    overrides: tuple[_Rule, ...]
    defaults: tuple[_Rule, ...]
    words: Mapping[str, Result]
    undecided: frozenset[str]
    categories: Mapping[str, str]
    unknown_category: str
    default_category: str
    # (operation key, raw category) → the rules that can apply, in file order: few pairs, many records
    _applicable: dict[tuple[str, str], tuple[tuple[_Rule, ...], tuple[_Rule, ...]]]
    _raw_words: dict[object, str]

    def canonical_operation(self, operation: str) -> tuple[str, str]:
        """The event's operation and its key (see `Mappings.canonical_operation`)."""
        key = operation_key(operation)
        known = self.operations.get(key)
        return (known if known is not None else operation.strip().rstrip(".").strip()), key

    def result_of(self, raw_result: object) -> Result:
        if raw_result is None:
            return "unknown"
        return self.words.get(self.word(raw_result), "unknown")

    def word(self, raw_result: object) -> str:
        """`_word`, remembered: a source writes a handful of distinct outcome values."""
        try:
            return self._raw_words[raw_result]
        except (KeyError, TypeError):
            word = _word(raw_result)
            if len(self._raw_words) < 1024 and isinstance(raw_result, str | bool | int):
                self._raw_words[raw_result] = word
            return word

    def outcome(
        self, record: Mapping[str, Any], key: str, raw_category: str | None, raw_result: object
    ) -> tuple[Result, str | None]:
        category = raw_category or ""
        rules = self._applicable.get((key, category))
        if rules is None:
            rules = self._applicable[(key, category)] = (
                tuple(r for r in self.overrides if r.applies(key, category)),
                tuple(r for r in self.defaults if r.applies(key, category)),
            )
        overrides, defaults = rules
        raw_text = None if raw_result is None or raw_result == "" else _text(raw_result)
        for rule in overrides:
            decided = rule.decide(record)
            if decided is not None:
                return decided[0], _joined(raw_text, decided[1])
        word = self.result_of(raw_result)
        if word != "unknown" or (raw_text is not None and self.word(raw_result) in self.undecided):
            return word, raw_text
        for rule in defaults:
            decided = rule.decide(record)
            if decided is not None:
                return decided[0], _joined(raw_text, decided[1])
        return "unknown", raw_text

    def category_of(self, raw_category: str | None) -> tuple[str, bool]:
        if not raw_category:
            return self.default_category, True
        label = self.categories.get(raw_category)
        if label is not None:
            return label, True
        return self.unknown_category.format(value=raw_category), False

    def summary(self, key: str, values: Mapping[str, str], raw_category: str | None) -> str:
        for templates in (
            self.summaries.get(key, ()),
            self.category_summaries.get(raw_category or "", ()),
            self.fallback,
        ):
            for template in templates:
                rendered = template.render(values)
                if rendered is not None:
                    return rendered
        raise AssertionError("defaults.summary_no_target always renders")  # checked at load


class Mappings(BaseModel):
    """The whole file, validated; `prepared` holds each source's section indexed for the hot path."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    defaults: Defaults
    results: ResultWords
    names: Names = Field(default_factory=Names)
    sources: dict[Source, SourceMapping]

    @model_validator(mode="after")
    def _summaries_use_their_source_placeholders(self) -> Mappings:
        for source, section in self.sources.items():
            allowed = placeholders_of(source)
            groups = {
                "summaries": section.summaries,
                "category_summaries": section.category_summaries,
                "fallback_summaries": {"": section.fallback_summaries},
            }
            for group, lists in groups.items():
                for key, templates in lists.items():
                    for template in templates:
                        try:
                            check_template(template, allowed)
                        except ValueError as error:
                            where = f"sources.{source}.{group}" + (f".{key}" if key else "")
                            raise ValueError(f"{where}: {error}") from None
            spellings: dict[str, str] = {}
            for operation in section.summaries:
                key = operation_key(operation)
                if key in spellings:
                    raise ValueError(
                        f"sources.{source}.summaries: {operation!r} and {spellings[key]!r} are "
                        "one operation (case and a trailing period do not count)"
                    )
                spellings[key] = operation
        return self

    def model_post_init(self, context: Any) -> None:
        for section in self.sources.values():
            section.names = self.names

    @cached_property
    def prepared(self) -> dict[str, PreparedSource]:
        words: dict[str, Result] = {}
        for word_list, result in (
            (self.results.success, "success"),
            (self.results.failure, "failure"),
            (self.results.partial, "partial"),
        ):
            for word in word_list:
                words[_word(word)] = result  # type: ignore[assignment]
        defaults = _compiled([self.defaults.summary, self.defaults.summary_no_target])
        return {
            source: PreparedSource(
                operations={
                    operation_key(o): o.strip().rstrip(".").strip() for o in section.summaries
                },
                summaries={operation_key(o): _compiled(t) for o, t in section.summaries.items()},
                category_summaries={c: _compiled(t) for c, t in section.category_summaries.items()},
                fallback=_compiled(section.fallback_summaries) + defaults,
                overrides=tuple(_prepare_rule(r) for r in section.result_overrides),
                defaults=tuple(_prepare_rule(r) for r in section.result_defaults),
                words=words,
                undecided=frozenset(_word(w) for w in self.results.undecided),
                categories=section.categories,
                unknown_category=section.unknown_category,
                default_category=self.defaults.category,
                _applicable={},
                _raw_words={},
            )
            for source, section in self.sources.items()
        }

    def canonical_operation(self, source: Source, operation: str) -> str:
        """The one spelling an operation is stored and filtered under: the spelling of its entry in
        this file when it has one (`Add User.` → `Add user`), else Microsoft's without a trailing
        period or surrounding spaces."""
        return self.prepared[source].canonical_operation(operation)[0]

    def result_of(self, raw_result: object) -> Result:
        """Microsoft's outcome word as success | failure | partial, else unknown."""
        return next(iter(self.prepared.values())).result_of(raw_result)

    def outcome(
        self,
        source: Source,
        record: Mapping[str, Any],
        operation: str,
        raw_category: str | None,
        raw_result: object,
    ) -> tuple[Result, str | None]:
        """The event's result and Microsoft's words for it (`result_detail`), by the documented
        rules: overrides, then the result words, then the defaults."""
        return self.prepared[source].outcome(
            record, operation_key(operation), raw_category, raw_result
        )

    def category_of(self, source: Source, raw_category: str | None) -> tuple[str, bool]:
        """The category label, and whether the raw value was one this file knows (a raw value it
        does not know is shown as the section's `unknown_category` says, never as "Other")."""
        return self.prepared[source].category_of(raw_category)

    def summary(
        self,
        source: Source,
        operation: str,
        values: Mapping[str, str],
        raw_category: str | None = None,
    ) -> str:
        """The first template that renders: the operation's own, then its category's, then the
        source's fallback, then the generic defaults (the last of which always renders)."""
        filled = {"actor": self.defaults.actor, "operation": operation, **values}
        return self.prepared[source].summary(operation_key(operation), filled, raw_category)


def _joined(first: str | None, second: str) -> str | None:
    if first and second:
        return f"{first}; {second}"
    return first or second or None


def parse_mappings(text: str, origin: str = "mappings.yml") -> Mappings:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise MappingError(f"{origin}: not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise MappingError(f"{origin}: expected a mapping at the top level")
    try:
        mappings = Mappings.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        )
        raise MappingError(f"{origin}: {problems}") from None
    missing = set(SOURCES) - set(mappings.sources)
    if missing:
        raise MappingError(f"{origin}: sources missing: {', '.join(sorted(missing))}")
    return mappings


def load_mappings(path: Path) -> Mappings:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise MappingError(f"{path}: cannot read: {error.strerror}") from None
    return parse_mappings(text, origin=str(path))


class LiveMappings:
    """The mapping in force, re-read when the file changes or a reload is requested (SIGHUP).

    `current()` costs one `stat` per call, so a runtime calls it once per batch: an edit applies from the
    next batch on, without a restart. Start-up still fails on a broken file (`LiveMappings.load`): a
    normalizer with no good mapping at all has nothing to fall back to.
    """

    def __init__(self, path: Path, mappings: Mappings, signature: tuple[int, int] | None) -> None:
        self.path = path
        self._mappings = mappings
        self._signature = signature
        self._reload_requested = False

    @classmethod
    def load(cls, path: Path) -> LiveMappings:
        signature = _signature(path)
        return cls(path, load_mappings(path), signature)

    @classmethod
    def fixed(cls, mappings: Mappings) -> LiveMappings:
        """A mapping that never reloads (tests, benchmarks)."""
        return cls(Path(os.devnull), mappings, None)

    def request_reload(self) -> None:
        """Re-read the file at the next `current()`, whatever its mtime says (the SIGHUP handler)."""
        self._reload_requested = True

    def current(self) -> Mappings:
        if self._signature is None and not self._reload_requested:
            return self._mappings
        signature = _signature(self.path)
        if self._reload_requested or signature != self._signature:
            self._reload_requested = False
            self._signature = signature
            self.reload()
        return self._mappings

    def reload(self) -> bool:
        """Apply the file now if it is valid; otherwise log why and keep the last good mapping."""
        try:
            candidate = load_mappings(self.path)
        except MappingError as error:
            MAPPINGS_RELOADS.labels("rejected").inc()
            log.error(
                "mappings reload rejected; the last good mapping stays in force",
                path=str(self.path),
                error=str(error),
            )
            return False
        self._mappings = candidate
        MAPPINGS_RELOADS.labels("applied").inc()
        log.info("mappings reloaded", path=str(self.path))
        return True


def _signature(path: Path) -> tuple[int, int] | None:
    """mtime and size: an edit that keeps the mtime (coarse clocks) almost always changes the size."""
    try:
        status = path.stat()
    except OSError:
        return (-1, -1)  # gone: a reload attempt will say so, and the last good mapping stays
    return (status.st_mtime_ns, status.st_size)
