"""Raw audit record → canonical event, as pure functions (no I/O, no clock reads, no globals).

Every message read from `aoc.raw.<source>` ends as exactly one of: a `CanonicalEvent` or a `DeadLetter`
with the reason. This module must never raise on bad input: exceptions here are for bugs only. Both the
embedded runtime and the Kafka runtime call `normalize_message`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson

from aoc_common.dead_letter import DeadLetter, dead_letter
from aoc_common.events import (
    Actor,
    CanonicalEvent,
    Enrichment,
    RawEnvelope,
    Source,
    Target,
    event_id_for,
    to_utc_millis,
)
from aoc_common.message_log.base import Record
from aoc_common.metrics import UNKNOWN_CATEGORIES
from aoc_common.search import RAW_TEXT_INDEXED_CHARS
from aoc_common.sources import SOURCES, source_record_id, source_spec
from aoc_common.sources.mapping import Mapped, Rejected, operation_key, validated
from aoc_common.topics import source_of_raw_topic
from aoc_normalizer.mappings import Mappings

STAGE = "normalizer"


@dataclass(frozen=True, slots=True)
class Limits:
    """Input hygiene limits (from settings)."""

    max_record_bytes: int = 1_000_000
    max_future_skew: timedelta = timedelta(minutes=60)


def normalize_message(
    record: Record, mappings: Mappings, *, now: datetime, limits: Limits = Limits()
) -> CanonicalEvent | DeadLetter:
    """The whole normalizer, for one message."""
    try:
        return _normalize(record, mappings, now=now, limits=limits)
    except Rejected as rejection:
        return dead_letter(
            record.value,
            str(rejection),
            stage=STAGE,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            key=record.key,
        )


def normalize_batch(
    records: Sequence[Record], mappings: Mappings, *, now: datetime, limits: Limits = Limits()
) -> tuple[list[CanonicalEvent], list[tuple[Record, DeadLetter]]]:
    """A consumed batch split into events (in order) and dead letters with the record each came from."""
    events: list[CanonicalEvent] = []
    dead: list[tuple[Record, DeadLetter]] = []
    for record in records:
        outcome = normalize_message(record, mappings, now=now, limits=limits)
        if isinstance(outcome, DeadLetter):
            dead.append((record, outcome))
        else:
            events.append(outcome)
    return events, dead


def _normalize(
    record: Record, mappings: Mappings, *, now: datetime, limits: Limits
) -> CanonicalEvent:
    if len(record.value) > limits.max_record_bytes:
        raise Rejected(
            f"record of {len(record.value)} bytes exceeds MAX_RECORD_BYTES={limits.max_record_bytes}"
        )
    topic_source = source_of_raw_topic(record.topic)
    if topic_source is None:
        raise Rejected(f"topic {record.topic!r} is not a raw source topic")
    try:
        document = orjson.loads(record.value)
    except orjson.JSONDecodeError as error:
        raise Rejected(f"invalid JSON: {error}") from None
    source, tenant_id, payload = _envelope(document)
    if source != topic_source:
        raise Rejected(f"envelope source {source!r} published on {record.topic!r}")
    if not isinstance(payload, dict):
        raise Rejected(f"payload is a JSON {type(payload).__name__}, expected an object")
    # JSON can only carry a NUL as the escape \u0000, so the bytes tell whether a walk is needed.
    nul_path = _first_nul(payload) if b"\\u0000" in record.value else None
    if nul_path is not None:
        raise Rejected(f"field {nul_path} contains a NUL character")

    prepared = mappings.prepared[source]
    spec = source_spec(source)
    mapped = spec.mapper(payload, mappings.sources[source])
    timestamp = to_utc_millis(mapped.timestamp)
    if timestamp > now + limits.max_future_skew:
        minutes = int(limits.max_future_skew.total_seconds() // 60)
        raise Rejected(
            f"timestamp {timestamp.isoformat()} is more than {minutes} minutes in the future"
        )

    operation, key = prepared.canonical_operation(mapped.operation)
    category, known = prepared.category_of(mapped.raw_category)
    if not known:
        UNKNOWN_CATEGORIES.labels(source, mapped.raw_category or "").inc()
    if mapped.result is not None:
        result, result_detail = mapped.result, mapped.result_detail
    else:
        result, result_detail = prepared.outcome(
            payload, key, mapped.raw_category, mapped.raw_result
        )
        result_detail = mapped.result_detail or result_detail
    record_id = spec.record_id(payload)
    dedupe_key = (
        f"{source}:{record_id}"
        if record_id is not None
        else make_dedupe_key(source, payload, timestamp, mapped)
    )
    raw_text = orjson.dumps(payload).decode("utf-8")[:RAW_TEXT_INDEXED_CHARS]
    actor_display, target_displays, summary = _displays(
        mappings,
        source,
        key=key,
        operation=operation,
        service=mapped.service,
        category=category,
        raw_category=mapped.raw_category,
        actor=mapped.actor,
        targets=mapped.targets,
        detail=mapped.detail,
        values=mapped.summary_values,
    )
    enrichment: Enrichment = (
        "off"
        if spec.name_enrichment != "none" and _unresolved_ids(source, mapped.actor, mapped.targets)
        else "complete"
    )
    return CanonicalEvent(
        id=event_id_for(dedupe_key),
        dedupe_key=dedupe_key,
        source=source,
        tenant_id=tenant_id or mapped.tenant_id,
        timestamp=timestamp,
        ingested_at=now,
        service=mapped.service,
        category=category,
        operation=operation,
        result=result,
        result_detail=result_detail,
        details=mapped.details,
        actor_display=actor_display,
        target_displays=target_displays,
        display_summary=summary,
        actor=mapped.actor,
        targets=mapped.targets,
        raw=payload,
        raw_text=raw_text,
        enrichment=enrichment,
    )


def _displays(
    mappings: Mappings,
    source: Source,
    *,
    key: str | None = None,
    operation: str,
    service: str,
    category: str,
    raw_category: str | None,
    actor: Actor,
    targets: list[Target],
    detail: str,
    values: Mapping[str, str],
) -> tuple[str, list[str], str]:
    """actor_display, target_displays and display_summary: what analysts read, from the same parts.

    `values` fill the source's own placeholders (`SourceSpec.summary_fields`); `key` is the
    operation's compared form when the caller has it already."""
    actor_display = (
        actor.user_principal_name
        or actor.display_name
        or actor.id
        or actor.app_id
        or mappings.defaults.actor
    )
    target_displays: list[str] = []
    slots = {
        "actor": actor_display,
        "target": "",
        "targets": "",
        "member": "",
        "role": "",
        "group": "",
        "operation": operation,
        "service": service,
        "category": category,
        "detail": detail,
    }
    for target in targets:
        shown = target.display_name or target.user_principal_name or target.id
        if not shown:
            continue
        target_displays.append(shown)
        slot = _TARGET_SLOTS.get((target.type or "").lower())
        if slot is not None and not slots[slot]:
            slots[slot] = shown
    if target_displays:
        slots["target"] = target_displays[0]
        slots["targets"] = ", ".join(target_displays)
    slots.update(values)
    summary = mappings.prepared[source].summary(
        operation_key(operation) if key is None else key, slots, raw_category
    )
    return actor_display, target_displays, summary


# --- enrichment: directory object ids → names (the lookup itself is the shell's job) ---

# Target types of directory audits that are Entra directory objects, so Graph's getByIds can name them.
DIRECTORY_OBJECT_TYPES = frozenset({"user", "group", "serviceprincipal", "device", "application"})


@dataclass(frozen=True, slots=True)
class DirectoryName:
    """What Graph says a directory object is called; `found=False`: Graph answered, no such object."""

    found: bool
    display_name: str | None = None
    user_principal_name: str | None = None


def _unresolved_ids(source: Source, actor: Actor, targets: list[Target]) -> list[str]:
    enriched = source_spec(source).name_enrichment
    if enriched == "none":
        return []  # e.g. Management Activity records name their objects (UPNs, sites, teams)
    ids: list[str] = []
    if actor.id and actor.type in ("user", "app") and not _has_name(actor):
        ids.append(actor.id)
    if enriched == "actor_and_targets":
        ids += [
            t.id
            for t in targets
            if t.id and (t.type or "").lower() in DIRECTORY_OBJECT_TYPES and not _has_name(t)
        ]
    return ids


def _has_name(party: Actor | Target) -> bool:
    return bool(party.display_name or party.user_principal_name)


def unresolved_directory_ids(event: CanonicalEvent) -> list[str]:
    """Directory object ids in `event` that have no readable name: what enrichment would look up."""
    return _unresolved_ids(event.source, event.actor, event.targets)


def with_directory_names(
    event: CanonicalEvent,
    names: Mapping[str, DirectoryName],
    mappings: Mappings,
    *,
    unresolved: Enrichment = "pending",
) -> CanonicalEvent:
    """`event` with the names Graph gave filled in and its displays re-rendered.

    Ids still missing from `names` leave the event marked `unresolved` ("pending" when Graph was asked
    and did not answer). An id Graph answered for without finding it (a deleted object) counts as
    resolved: it keeps showing as the id, and asking again would not help.
    """
    wanted = unresolved_directory_ids(event)
    if not wanted:
        return event
    actor = _named(event.actor, names.get(event.actor.id or ""))
    targets = [_named(t, names.get(t.id or "")) for t in event.targets]
    detail, values, raw_category = _summary_parts(event, mappings)
    actor_display, target_displays, summary = _displays(
        mappings,
        event.source,
        operation=event.operation,
        service=event.service,
        category=event.category,
        raw_category=raw_category,
        actor=actor,
        targets=targets,
        detail=detail,
        values=values,
    )
    complete = all(i in names for i in wanted)
    return event.model_copy(
        update={
            "actor": actor,
            "targets": targets,
            "actor_display": actor_display,
            "target_displays": target_displays,
            "display_summary": summary,
            "enrichment": "complete" if complete else unresolved,
        }
    )


def _summary_parts(
    event: CanonicalEvent, mappings: Mappings
) -> tuple[str, Mapping[str, str], str | None]:
    """The detail, source-specific summary values and raw category of the event's record, mapped
    again: the event does not keep them, and the re-rendered summary must show them as the first
    one did."""
    try:
        mapped = source_spec(event.source).mapper(event.raw, mappings.sources[event.source])
    except Rejected:  # the mapping changed since: render without them
        return "", {}, None
    return mapped.detail, mapped.summary_values, mapped.raw_category


P = TypeVar("P", Actor, Target)


def _named(party: P, name: DirectoryName | None) -> P:
    if name is None or not name.found or _has_name(party):
        return party
    return party.model_copy(
        update={
            "display_name": name.display_name,
            "user_principal_name": party.user_principal_name or name.user_principal_name,
        }
    )


def make_dedupe_key(
    source: Source, payload: dict[str, Any], timestamp: datetime, mapped: Mapped
) -> str:
    """`<source>:<record id>`, or for records without an id a hash of what identifies the action, in
    Microsoft's own terms (raw operation and category), so that a change of labels in `mappings.yml`
    never changes the key of a record already stored."""
    record_id = source_record_id(source, payload)
    if record_id is not None:
        return f"{source}:{record_id}"
    identity = orjson.dumps(
        [
            timestamp.isoformat(),
            mapped.raw_category,
            mapped.operation,
            [t.model_dump(mode="json") for t in mapped.targets],
        ]
    )
    return f"{source}:sha256:{hashlib.sha256(identity).hexdigest()}"


def _first_nul(value: Any, path: str = "payload") -> str | None:
    """Where a NUL hides in a string or key: no store can index it, and no analyst can read it."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        items: Iterator[tuple[str, Any]] = ((str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return None
    for name, child in items:
        if "\x00" in name:
            return f"{path} (a key)"
        found = _first_nul(child, f"{path}.{name}")
        if found is not None:
            return found
    return None


# Target types whose first display fills {member}, {role} and {group}.
_TARGET_SLOTS = {
    "user": "member",
    "serviceprincipal": "member",
    "member": "member",
    "role": "role",
    "group": "group",
}


def _envelope(document: Any) -> tuple[str, str | None, Any]:
    """source, tenant_id and payload of a collector envelope. The common case (our collector's own
    envelopes) is checked by hand; anything else goes through `RawEnvelope`, whose error says what is
    wrong."""
    if (
        isinstance(document, dict)
        and document.keys() <= _ENVELOPE_KEYS
        and isinstance(document.get("source"), str)
        and document["source"] in SOURCES
        and isinstance(document.get("fetched_at"), str)
        and isinstance(document.get("tenant_id"), str | None)
        and "payload" in document
    ):
        return document["source"], document.get("tenant_id"), document["payload"]
    envelope = validated(RawEnvelope, document, "envelope")
    return envelope.source, envelope.tenant_id, envelope.payload


_ENVELOPE_KEYS = frozenset(RawEnvelope.model_fields)
