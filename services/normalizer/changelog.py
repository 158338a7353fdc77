"""The normalizer's state on Kafka, as changelog records: one format for both Kafka runtimes.

The Faust app keeps its dedupe sightings and directory names in Faust tables; the consumer runtime keeps
them in memory. Both write and restore the same changelog topics in the same format (Faust's `json`
codec for keys and values), so an operator can stop one runtime and start the other without losing the
dedupe state or the name cache:

- `aoc-normalizer-dedupe-seen-changelog`: partition p holds the sightings of raw partition p (of every
  raw topic); one record per raw partition per batch, key `"<p>:<uuid>"`, value
  `{"at_ms": <ms>, "keys": [<dedupe_key>, …]}`. `cleanup.policy=delete`, `retention.ms` = the dedupe
  window: an expired batch of sightings disappears by itself.
- `aoc-normalizer-directory-names-changelog`: key `"<object id>"`, value
  `[found, display_name, user_principal_name, resolved_at_ms]`, partition crc32(id) mod partitions;
  compacted (a cache: the latest answer per id).

Pure functions: no I/O here.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from aoc_common import topics
from aoc_normalizer.core import DirectoryName
from aoc_normalizer.enrichment import CachedName

DEDUPE_TABLE = "dedupe-seen"
NAMES_TABLE = "directory-names"


def changelog_topic(table: str) -> str:
    """Faust's name for a table's changelog: `<app id>-<table>-changelog` (the app id is the group)."""
    return f"{topics.NORMALIZER_GROUP}-{table}-changelog"


def dedupe_changelog_config(window_ms: int) -> dict[str, str]:
    """Topic settings of the sightings changelog: records older than the window are deleted."""
    return {"cleanup.policy": "delete", "retention.ms": str(window_ms)}


NAMES_CHANGELOG_CONFIG = {"cleanup.policy": "compact"}


# --- dedupe sightings --------------------------------------------------------------------------------


def sightings_key(partition: int) -> str:
    """A fresh key per batch record: every record is kept until retention deletes it."""
    return f"{partition}:{uuid.uuid4().hex}"


def sightings_value(keys: Sequence[str], at_ms: int) -> dict[str, Any]:
    return {"at_ms": at_ms, "keys": list(keys)}


def sightings_of(value: Any) -> tuple[int, list[str]] | None:
    """(at_ms, dedupe keys) of a decoded changelog value; None for a tombstone or an unknown shape."""
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
        return None
    at_ms = int(value.get("at_ms") or 0)
    return at_ms, [key for key in value["keys"] if isinstance(key, str)]


def apply_sightings(data: dict[str, int], values: Iterable[Any]) -> None:
    """Recovery: every key of every batch record into `data`; the latest sighting wins."""
    for value in values:
        found = sightings_of(value)
        if found is None:
            continue
        at_ms, keys = found
        for key in keys:
            if at_ms >= data.get(key, 0):
                data[key] = at_ms


# --- directory names ---------------------------------------------------------------------------------


def name_partition(object_id: str, partitions: int) -> int:
    return zlib.crc32(object_id.encode("utf-8")) % partitions


def name_value(cached: CachedName) -> list[Any]:
    name = cached.name
    return [name.found, name.display_name, name.user_principal_name, cached.resolved_at_ms]


def cached_name_of(value: Any) -> CachedName | None:
    """The cache entry of a decoded changelog value; None for a tombstone or an unknown shape."""
    if isinstance(value, list) and len(value) == 4:
        return CachedName(DirectoryName(*value[:3]), int(value[3]))
    return None


# --- bytes, as Faust's `json` codec writes them -------------------------------------------------------


def encoded(value: Any) -> bytes:
    return orjson.dumps(value)


def decoded(data: bytes | None) -> Any:
    """A changelog key or value; None for a tombstone or bytes that are not JSON."""
    if not data:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def names_from(records: Iterable[tuple[bytes | None, bytes | None]]) -> dict[str, CachedName]:
    """Recovery of the name cache from (key, value) records, in order: the latest answer wins."""
    names: dict[str, CachedName] = {}
    for key, value in records:
        object_id = decoded(key)
        if not isinstance(object_id, str):
            continue
        cached = cached_name_of(decoded(value))
        if cached is None:
            names.pop(object_id, None)
        else:
            names[object_id] = cached
    return names
