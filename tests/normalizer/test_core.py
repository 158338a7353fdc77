"""The normalizer core maps every fixture record to the expected canonical event, or dead-letters it."""

from __future__ import annotations

from pathlib import Path

import pytest

from aoc_common.dead_letter import DeadLetter
from aoc_common.events import CanonicalEvent, event_id_for
from aoc_normalizer.core import Limits, normalize_message
from aoc_normalizer.mappings import Mappings, load_mappings
from tests.utils.records import (
    NOW,
    directory_records,
    intune_records,
    malformed_inputs,
    raw_bytes_record,
    raw_record,
    unified_records,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mappings() -> Mappings:
    return load_mappings(REPO / "mappings.yml")


def normalized(record, mappings: Mappings) -> CanonicalEvent:
    outcome = normalize_message(record, mappings, now=NOW)
    assert isinstance(outcome, CanonicalEvent), getattr(outcome, "reason", outcome)
    return outcome


def by_id(records: list[dict], field: str, value: str) -> dict:
    return next(r for r in records if r[field] == value)


def test_every_fixture_record_becomes_an_event(fixtures_dir: Path, mappings: Mappings) -> None:
    sources = [
        ("directory", directory_records(fixtures_dir)),
        ("intune", intune_records(fixtures_dir)),
        ("unified", unified_records(fixtures_dir)),
    ]
    counts = {}
    for source, records in sources:
        events = [normalized(raw_record(source, r), mappings) for r in records]
        counts[source] = (len(events), len({e.dedupe_key for e in events}))
    # 25 + 27 + 10 directory records on three pages; page 2 repeats two records of page 1.
    assert counts == {"directory": (62, 60), "intune": (30, 30), "unified": (57, 57)}


def test_directory_role_assignment_by_value(fixtures_dir: Path, mappings: Mappings) -> None:
    raw = by_id(directory_records(fixtures_dir), "id", "Directory_0F17A300_0007")
    event = normalized(raw_record("directory", raw), mappings)
    assert event.source == "directory"
    assert event.dedupe_key == "directory:Directory_0F17A300_0007"
    assert event.id == event_id_for("directory:Directory_0F17A300_0007")
    assert event.service == "Entra ID"
    assert event.category == "Role management"
    assert event.operation == "Add member to role"
    assert event.result == "success"
    assert event.actor_display == "bob.secops@contoso.com"
    assert event.actor.type == "user" and event.actor.ip_address == "203.0.113.17"
    assert event.target_displays == ["Role 7", "member7@contoso.com"]
    assert (
        event.display_summary == "bob.secops@contoso.com added member7@contoso.com to role Role 7"
    )
    assert event.timestamp.isoformat() == "2026-11-11T01:31:59.647000+00:00"
    assert event.tenant_id == "contoso"
    assert event.raw == raw


def test_directory_action_by_an_application(fixtures_dir: Path, mappings: Mappings) -> None:
    raw = by_id(directory_records(fixtures_dir), "id", "Directory_F28C105D_0000")
    event = normalized(raw_record("directory", raw), mappings)
    assert event.actor.type == "app"
    assert event.actor_display == "Microsoft Intune"
    assert event.actor.app_id == "36f675cc-81e7-4ef5-e8e2-5d940ed90475"
    assert event.display_summary == "Microsoft Intune updated user user0@contoso.com"
    assert event.targets[0].modified_properties == [
        {"displayName": "AccountEnabled", "oldValue": "[false]", "newValue": "[true]"}
    ]


def test_intune_event_by_value(fixtures_dir: Path, mappings: Mappings) -> None:
    raw = by_id(intune_records(fixtures_dir), "id", "f4c73f2b-c8ff-1c38-5f93-d180c5ef5cfb")
    event = normalized(raw_record("intune", raw), mappings)
    assert (event.service, event.category, event.operation, event.result) == (
        "Intune",
        "Device management",
        "Patch ManagedDevice",
        "success",
    )
    assert event.actor_display == "alice.admin@contoso.com"
    assert event.target_displays == ["ManagedDevice #0"]
    assert (
        event.display_summary == "alice.admin@contoso.com changed managed device ManagedDevice #0"
    )


def test_exchange_forwarding_change_shows_the_forwarding_address(
    fixtures_dir: Path, mappings: Mappings
) -> None:
    raw = by_id(unified_records(fixtures_dir), "Id", "d8d4250d-89df-5e79-bf7b-6c6c3c2496eb")
    event = normalized(raw_record("unified", raw), mappings)
    assert (event.service, event.category, event.operation, event.result) == (
        "Exchange",
        "Exchange admin",
        "Set-Mailbox",
        "success",
    )
    assert event.tenant_id == "contoso"
    assert event.actor.ip_address == "198.51.100.0"
    assert event.display_summary == (
        "alice.admin@contoso.com changed mailbox mbx0@contoso.com "
        "(ForwardingSmtpAddress=smtp:exfil@evil.example)"
    )


def test_sharepoint_and_teams_records_name_their_targets(
    fixtures_dir: Path, mappings: Mappings
) -> None:
    records = unified_records(fixtures_dir)
    site = normalized(
        raw_record("unified", by_id(records, "Id", "1032888d-7bc7-1df3-8c4c-aa837ee14b90")),
        mappings,
    )
    assert site.result == "failure"  # ResultStatus "False"
    assert site.service == "SharePoint"
    assert site.display_summary == (
        "alice.admin@contoso.com made guest0@fabrikam.com a site collection admin of "
        "https://contoso.sharepoint.com/sites/finance0"
    )
    team = normalized(
        raw_record("unified", by_id(records, "Id", "8cd03260-74aa-f340-997a-20be63cc537b")),
        mappings,
    )
    assert team.service == "Teams"
    assert team.target_displays == ["Project 0", "guest0@fabrikam.com"]
    assert (
        team.display_summary
        == "alice.admin@contoso.com added guest0@fabrikam.com to team Project 0"
    )


def test_unknown_operation_gets_the_generic_summary(mappings: Mappings) -> None:
    raw = {
        "id": "Directory_X",
        "activityDateTime": "2026-11-20T00:00:00Z",
        "activityDisplayName": "Frobnicate tenant",
        "category": "Brand new",
        "initiatedBy": {"user": {"userPrincipalName": "eve@contoso.com"}},
        "targetResources": [{"displayName": "Thing 1", "type": "Other"}],
        "someFieldMicrosoftAddedLater": {"nested": True},
    }
    event = normalized(raw_record("directory", raw), mappings)
    assert event.display_summary == "eve@contoso.com performed Frobnicate tenant on Thing 1"
    assert event.category == "Brand new"
    assert event.raw["someFieldMicrosoftAddedLater"] == {"nested": True}


def test_record_without_an_id_gets_a_content_hash_dedupe_key(mappings: Mappings) -> None:
    raw = {
        "activityDateTime": "2026-11-20T00:00:00Z",
        "activityDisplayName": "Add user",
        "category": "UserManagement",
        "targetResources": [{"userPrincipalName": "x@contoso.com", "type": "User"}],
    }
    first = normalized(raw_record("directory", raw), mappings)
    again = normalized(raw_record("directory", dict(raw), offset=9), mappings)
    other = normalized(
        raw_record("directory", {**raw, "activityDateTime": "2026-11-20T00:00:01Z"}), mappings
    )
    assert first.dedupe_key.startswith("directory:sha256:")
    assert first.dedupe_key == again.dedupe_key
    assert first.dedupe_key != other.dedupe_key


EXPECTED_REASONS = {
    "not_json": "invalid JSON",
    "missing_timestamp": "activityDateTime: Field required",
    "wrong_types": "activityDateTime: Input should be a valid datetime",
    "huge_field": "exceeds MAX_RECORD_BYTES=1000000",
    "unicode_and_nulls": "contains a NUL character",
    "regex_bomb_search": "payload is a JSON str, expected an object",
    "nosql_injection_filter": "activityDateTime: Field required",
    "future_timestamp": "more than 60 minutes in the future",
}


def test_every_malformed_input_is_dead_lettered_with_its_reason(
    fixtures_dir: Path, mappings: Mappings
) -> None:
    entries = malformed_inputs(fixtures_dir)
    assert {e["kind"] for e in entries} == set(EXPECTED_REASONS)
    for offset, entry in enumerate(entries):
        if entry["kind"] == "not_json":
            record = raw_bytes_record("directory", entry["payload"].encode(), offset=offset)
        else:
            record = raw_record("directory", entry["payload"], offset=offset)
        outcome = normalize_message(record, mappings, now=NOW, limits=Limits())
        assert isinstance(outcome, DeadLetter), entry["kind"]
        assert EXPECTED_REASONS[entry["kind"]] in outcome.reason, (entry["kind"], outcome.reason)
        assert outcome.source_topic == "aoc.raw.directory"
        assert outcome.source_offset == offset
        assert outcome.original_size == len(record.value)
        assert outcome.original_truncated == (len(record.value) > 64 * 1024)
        assert record.value.startswith(outcome.original_bytes())


def test_envelope_on_the_wrong_topic_is_dead_lettered(mappings: Mappings) -> None:
    record = raw_record("intune", {"id": "x", "activityDateTime": "2026-11-20T00:00:00Z"})
    moved = type(record)("aoc.raw.directory", 0, 0, None, record.value, 0)
    outcome = normalize_message(moved, mappings, now=NOW)
    assert isinstance(outcome, DeadLetter)
    assert "envelope source 'intune' published on 'aoc.raw.directory'" in outcome.reason


def test_a_nul_in_a_key_is_dead_lettered_too(mappings: Mappings) -> None:
    raw = {
        "id": "Directory_K",
        "activityDateTime": "2026-11-20T00:00:00Z",
        "activityDisplayName": "Add user",
        "additionalDetails": [{"ke\x00y": "v"}],
    }
    outcome = normalize_message(raw_record("directory", raw), mappings, now=NOW)
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason == "field payload.additionalDetails.0 (a key) contains a NUL character"


def test_an_unknown_record_type_shows_its_number_and_is_counted(mappings: Mappings) -> None:
    from prometheus_client import REGISTRY

    def counted() -> float:
        labels = {"source": "unified", "value": "997"}
        return REGISTRY.get_sample_value("aoc_unknown_record_types_total", labels) or 0.0

    before = counted()
    raw = {
        "CreationTime": "2026-11-20T00:00:00",
        "Id": "b0e1c2d3-0000-4000-8000-000000000997",
        "Operation": "BrandNewThing",
        "RecordType": 997,
        "UserId": "alice.admin@contoso.com",
        "Workload": "Exchange",
    }
    event = normalized(raw_record("unified", raw), mappings)
    assert event.category == "RecordType 997"  # never a bare number, never silently "Other"
    assert counted() == before + 1
