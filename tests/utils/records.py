"""Builders for test inputs: raw records as they arrive on the raw topics, and the canonical events the
normalizer core makes of them, from the shared fixtures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aoc_common.codec import encode
from aoc_common.events import Actor, CanonicalEvent, RawEnvelope, Source, event_id_for
from aoc_common.message_log.base import Record
from aoc_common.topics import raw_topic

REPO_ROOT = Path(__file__).resolve().parents[2]
FETCHED_AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def directory_records(fixtures: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for page in sorted(fixtures.glob("graph_directory_audits_page*.json")):
        records += load_json(page)["value"]
    return records


def intune_records(fixtures: Path) -> list[dict[str, Any]]:
    return list(load_json(fixtures / "graph_intune_audit_events.json")["value"])


def unified_records(fixtures: Path) -> list[dict[str, Any]]:
    feed = load_json(fixtures / "o365_management_activity.json")
    return [r for c in feed["content_list"] for r in feed["blobs"][c["contentId"]]]


def an_event(name: str, **fields: Any) -> CanonicalEvent:
    """A directory event as the normalizer publishes one, keyed `directory:<name>`; `fields` replace
    any of its values."""
    key = f"directory:{name}"
    values: dict[str, Any] = {
        "id": event_id_for(key),
        "dedupe_key": key,
        "source": "directory",
        "timestamp": NOW,
        "ingested_at": NOW,
        "service": "Entra ID",
        "category": "User management",
        "operation": "Add user",
        "result": "success",
        "actor_display": "alice@contoso.com",
        "display_summary": f"created {name}",
        "actor": Actor(type="user", user_principal_name="alice@contoso.com"),
        "raw": {"id": name},
        "raw_text": name,
    }
    return CanonicalEvent(**(values | fields))


def raw_record(source: Source, payload: Any, *, offset: int = 0) -> Record:
    """A raw-topic record carrying `payload` in a collector envelope."""
    envelope = RawEnvelope(
        source=source, tenant_id="contoso", fetched_at=FETCHED_AT, payload=payload
    )
    return Record(raw_topic(source), 0, offset, None, encode(envelope), 0)


def raw_bytes_record(source: Source, value: bytes, *, offset: int = 0) -> Record:
    return Record(raw_topic(source), 0, offset, None, value, 0)


def malformed_inputs(fixtures: Path) -> list[dict[str, Any]]:
    """malformed_inputs.json with the huge value built as its placeholder describes (2,000,000 'A')."""
    entries = load_json(fixtures / "malformed_inputs.json")
    for entry in entries:
        if entry["kind"] == "huge_field":
            entry["payload"]["activityDisplayName"] = "A" * 2_000_000
    return entries


def signin_records(fixtures: Path) -> list[dict[str, Any]]:
    """The Entra sign-in sample pages (Graph `/auditLogs/signIns`), newest first as Graph lists them."""
    records: list[dict[str, Any]] = []
    for page in sorted(fixtures.glob("graph_signins_page*.json")):
        records += load_json(page)["value"]
    return records


def signin_events(fixtures: Path) -> list[CanonicalEvent]:
    """Every sample sign-in as the normalizer core maps it, in the order Graph lists them."""
    from aoc_normalizer.core import normalize_message
    from aoc_normalizer.mappings import load_mappings

    mappings = load_mappings(REPO_ROOT / "mappings.yml")
    events = [
        normalize_message(raw_record("signins", r), mappings, now=NOW)
        for r in signin_records(fixtures)
    ]
    assert all(isinstance(e, CanonicalEvent) for e in events)
    return events  # type: ignore[return-value]


def fixture_events(fixtures: Path) -> list[CanonicalEvent]:
    """Every admin audit fixture record (directory, Intune, Management Activity; the sign-ins are
    `signin_events`) as the normalizer core maps it (duplicates included, in fixture order)."""
    from aoc_normalizer.core import normalize_message
    from aoc_normalizer.mappings import load_mappings

    mappings = load_mappings(REPO_ROOT / "mappings.yml")
    records = (
        [raw_record("directory", r) for r in directory_records(fixtures)]
        + [raw_record("intune", r) for r in intune_records(fixtures)]
        + [raw_record("unified", r) for r in unified_records(fixtures)]
    )
    events = [normalize_message(r, mappings, now=NOW) for r in records]
    assert all(isinstance(e, CanonicalEvent) for e in events)
    return events  # type: ignore[return-value]
