"""The registry of Microsoft audit sources: one `SourceSpec` per source, one module per source.

Every module of this package that defines a module-level `SPEC` is a source; adding a source is adding
its module (plus its section of `mappings.yml` and its sample files), and every place that lists,
collects, replays, serves, maps or describes sources loops over this registry instead of naming them.
Ids are listed in a fixed order (by id) so that topics, health panels and reports read the same
everywhere.

The collector keys raw messages by `record_id` and the normalizer derives the dedupe key from it, so
both read it through the spec. This package must never do I/O beyond importing its own modules.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from aoc_common.settings import ConfigurationError
from aoc_common.sources.spec import SourceSpec

_ID = re.compile(r"^[a-z][a-z0-9_]{0,31}$")  # a raw topic name part and a URL-safe word


def _discover() -> dict[str, SourceSpec]:
    found: dict[str, SourceSpec] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        spec = getattr(module, "SPEC", None)
        if not isinstance(spec, SourceSpec):
            continue
        if not _ID.match(spec.id):
            raise RuntimeError(
                f"source id {spec.id!r} in {module.__name__} is not a lower-case word"
            )
        if spec.id in found:
            raise RuntimeError(f"source id {spec.id!r} is defined twice")
        found[spec.id] = spec
    return dict(sorted(found.items()))


_REGISTRY: dict[str, SourceSpec] = _discover()

SOURCES: tuple[str, ...] = tuple(_REGISTRY)


def all_sources() -> tuple[SourceSpec, ...]:
    """Every source's spec, in the order of `SOURCES`."""
    return tuple(_REGISTRY.values())


def source_spec(source: str) -> SourceSpec:
    """The spec of `source`; KeyError naming the known ids when there is none."""
    try:
        return _REGISTRY[source]
    except KeyError:
        raise KeyError(f"unknown source {source!r}; known: {', '.join(SOURCES)}") from None


def source_record_id(source: str, payload: Any) -> str | None:
    """The record's own id, or None when it has none (or not a usable one)."""
    return _REGISTRY[source].record_id(payload)


def source_vocabulary() -> str:
    """`directory | intune | …`: the ids as API and tool descriptions list them."""
    return " | ".join(SOURCES)


def source_descriptions() -> str:
    """One line per source (`id: description`), for API, MCP and question-answering text."""
    return "; ".join(f"{spec.id}: {spec.labels.description}" for spec in all_sources())


class SourceOptionsError(ConfigurationError):
    """A source's own settings (e.g. `SIGNINS_…`) are invalid; the message names the variable.

    Like any bad setting it stops start-up with one line (a clean exit, never a traceback)."""


def _env_prefix(options: type[BaseModel]) -> str:
    return str(options.model_config.get("env_prefix", "")).upper()


def source_option_variables() -> frozenset[str]:
    """The environment variables the sources' own settings read (e.g. `SIGNINS_EVENT_TYPES`)."""
    return frozenset(
        f"{_env_prefix(spec.options)}{name.upper()}"
        for spec in all_sources()
        if spec.options is not None
        for name in spec.options.model_fields
    )


def load_source_options() -> Mapping[str, BaseModel]:
    """Each source's own settings, read from the environment (and `.env`) once at start-up."""
    options: dict[str, BaseModel] = {}
    for spec in all_sources():
        if spec.options is None:
            continue
        try:
            options[spec.id] = spec.options()
        except ValidationError as error:
            prefix = _env_prefix(spec.options)
            problems = "; ".join(
                f"{prefix}{str(e['loc'][0]).upper()}: {e['msg']}" for e in error.errors()
            )
            raise SourceOptionsError(problems) from None
    return options


__all__ = [
    "SOURCES",
    "SourceOptionsError",
    "SourceSpec",
    "all_sources",
    "load_source_options",
    "source_descriptions",
    "source_option_variables",
    "source_record_id",
    "source_spec",
    "source_vocabulary",
]
