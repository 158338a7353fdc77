"""Loads and checks `mappings.yml`: labels and summary templates that turn raw records into readable events.

A broken file must be rejected with a message that says what is wrong and where, never half-applied:
`load_mappings` either returns a complete, checked `Mappings` or raises `MappingError`. A running
normalizer picks up an edited file (`LiveMappings`: on a change of its mtime or size, or on SIGHUP); a
broken edit is logged and refused, and the last good mapping stays in force.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from aoc_common.events import Result, Source
from aoc_common.logging import get_logger
from aoc_common.metrics import MAPPINGS_RELOADS
from aoc_common.sources import SOURCES, source_spec
from aoc_common.sources.mapping import PLACEHOLDERS, SourceMapping, check_template

log = get_logger(__name__)

_EMPTY_BRACKETS = re.compile(r"\s*\(\s*\)")
_SPACES = re.compile(r"\s{2,}")


class MappingError(ValueError):
    """mappings.yml cannot be used; the message names the file and the offending entry."""


@cache
def placeholders_of(source: Source) -> frozenset[str]:
    """What `source`'s summary templates may use: the common placeholders and its own."""
    return PLACEHOLDERS | frozenset(source_spec(source).summary_fields)


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


class ResultWords(BaseModel):
    model_config = ConfigDict(extra="forbid")

    success: list[str]
    failure: list[str]


class Mappings(BaseModel):
    """The whole file, validated."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    defaults: Defaults
    results: ResultWords
    sources: dict[Source, SourceMapping]

    @model_validator(mode="after")
    def _summaries_use_their_source_placeholders(self) -> Mappings:
        for source, section in self.sources.items():
            allowed = placeholders_of(source)
            for operation, template in section.summaries.items():
                try:
                    check_template(template, allowed)
                except ValueError as error:
                    raise ValueError(f"sources.{source}.summaries.{operation}: {error}") from None
        return self

    def result_of(self, raw_result: object) -> Result:
        word = str(raw_result).strip().lower()
        if word in (w.lower() for w in self.results.success):
            return "success"
        if word in (w.lower() for w in self.results.failure):
            return "failure"
        return "unknown"

    def summary(self, source: Source, operation: str, values: dict[str, str]) -> str:
        """Render the operation's template, or the generic fallback, with missing values as ''."""
        template = self.sources[source].summaries.get(operation)
        if template is None:
            has_target = bool(values.get("targets"))
            template = self.defaults.summary if has_target else self.defaults.summary_no_target
        names = placeholders_of(source)
        rendered = template.format_map({name: values.get(name, "") for name in names})
        return _SPACES.sub(" ", _EMPTY_BRACKETS.sub("", rendered)).strip()


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
