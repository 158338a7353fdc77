"""Entra ID sign-ins (Graph `signIn`) → canonical events, by value: who, from where, to which app,
with what outcome, and what Microsoft said about it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from aoc_common.dead_letter import DeadLetter
from aoc_common.events import CanonicalEvent, GeoLocation
from aoc_normalizer.core import normalize_message
from aoc_normalizer.mappings import Mappings, load_mappings
from tests.utils.records import NOW, raw_record, signin_records

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mappings() -> Mappings:
    return load_mappings(REPO / "mappings.yml")


@pytest.fixture(scope="module")
def records(fixtures_dir: Path) -> list[dict[str, Any]]:
    return signin_records(fixtures_dir)


def mapped(payload: dict[str, Any], mappings: Mappings) -> CanonicalEvent:
    outcome = normalize_message(raw_record("signins", payload), mappings, now=NOW)
    assert isinstance(outcome, CanonicalEvent), getattr(outcome, "reason", outcome)
    return outcome


def record_of(records: list[dict[str, Any]], user: str, **match: Any) -> dict[str, Any]:
    return next(
        r
        for r in records
        if r["userPrincipalName"].startswith(user)
        and all(r.get(k) == v or r["status"].get(k) == v for k, v in match.items())
    )


def test_every_sample_sign_in_becomes_an_event_keyed_by_its_id(
    records: list[dict[str, Any]], mappings: Mappings
) -> None:
    events = [mapped(r, mappings) for r in records]

    assert len(events) == 31
    assert [e.dedupe_key for e in events] == [f"signins:{r['id']}" for r in records]
    assert {e.source for e in events} == {"signins"}
    assert {e.service for e in events} == {"Entra ID"}
    assert {e.category for e in events} == {"Interactive user sign-in"}
    assert {e.operation for e in events} == {"Sign-in"}
    assert sorted({e.result for e in events}) == ["failure", "partial", "success"]


def test_a_sign_in_blocked_by_conditional_access_reads_as_the_analyst_expects(
    records: list[dict[str, Any]], mappings: Mappings
) -> None:
    event = mapped(record_of(records, "adele.vance"), mappings)

    assert event.display_summary == (
        "adele.vance@contoso.com failed to sign in to Office 365 Exchange Online from 203.0.113.7 "
        "(NL) — blocked by conditional access"
    )
    assert event.result == "failure"
    assert event.result_detail == (
        "53003: Access has been blocked by Conditional Access policies. The access policy does "
        "not allow token issuance."
    )
    assert event.actor.model_dump() == {
        "type": "user",
        "id": "9d3303d2-e507-55bd-bdf5-ad5a4bc073db",
        "display_name": "Adele Vance",
        "user_principal_name": "adele.vance@contoso.com",
        "app_id": None,
        "ip_address": "203.0.113.7",
        "user_agent": None,
        "location": {"city": "Amsterdam", "state": "Noord-Holland", "country_or_region": "NL"},
    }
    assert event.actor_display == "adele.vance@contoso.com"
    assert event.target_displays == ["Office 365 Exchange Online"]
    assert event.targets[0].type == "Application"
    assert event.targets[0].id == "00000002-0000-0ff1-ce00-000000000000"
    assert event.details == {
        "sign_in_type": "interactiveUser",
        "sign_in_status": "failure",
        "error_code": 53003,
        "app": "Office 365 Exchange Online",
        "resource": "Office 365 Exchange Online",
        "client_app": "Mobile Apps and Desktop clients",
        "legacy_authentication": False,
        "conditional_access": "failure",
        "blocked_by_conditional_access": True,
        "risk_level_during_sign_in": "none",
        "risk_level_aggregated": "none",
        "risk_state": "none",
        "risk_detail": "none",
        "device_os": "Ios",  # empty device name and browser left out
        "device_compliant": False,
        "device_managed": False,
        "correlation_id": event.raw["correlationId"],
    }
    assert event.enrichment == "complete"  # sign-ins name their user and app themselves


def test_a_wrong_password_is_a_failure_with_the_code_and_reason(
    records: list[dict[str, Any]], mappings: Mappings
) -> None:
    event = mapped(record_of(records, "megan.bowen", errorCode=50126), mappings)

    assert event.result == "failure"
    assert event.display_summary == (
        "megan.bowen@contoso.com failed to sign in to OfficeHome from 192.0.2.66 (BR) — Error "
        "validating credentials due to invalid username or password (50126)"
    )
    assert event.result_detail is not None
    assert event.result_detail.startswith(
        "50126: Error validating credentials due to invalid username or password. (The user "
    )
    assert event.actor.location == GeoLocation(
        city="Sao Paulo", state="Sao Paulo", country_or_region="BR"
    )


def test_an_mfa_prompt_is_an_interrupted_sign_in_not_a_failure(
    records: list[dict[str, Any]], mappings: Mappings
) -> None:
    event = mapped(record_of(records, "alice.admin", errorCode=50074), mappings)

    assert event.result == "partial"
    assert event.details["sign_in_status"] == "interrupted"
    assert event.display_summary == (
        "alice.admin@contoso.com was interrupted signing in to Azure Portal from 203.0.113.10 "
        "(NL) — Strong Authentication is required (50074)"
    )


def test_a_success_keeps_microsofts_additional_details_and_no_error(
    records: list[dict[str, Any]], mappings: Mappings
) -> None:
    completed = next(
        r for r in records if r["status"]["additionalDetails"] == "MFA completed in Azure AD"
    )
    event = mapped(completed, mappings)

    assert event.result == "success"
    assert event.result_detail == "MFA completed in Azure AD"  # not "0: Other."
    assert event.display_summary == (
        "alice.admin@contoso.com signed in to Azure Portal from 203.0.113.10 (NL)"
    )


def test_legacy_authentication_and_sign_in_risk_show_in_details_and_summary(
    records: list[dict[str, Any]], mappings: Mappings
) -> None:
    imap = mapped(record_of(records, "svc.scanner", clientAppUsed="IMAP4"), mappings)
    risky = mapped(record_of(records, "diego.siciliani"), mappings)

    assert imap.details["legacy_authentication"] is True
    assert imap.display_summary == (
        "svc.scanner@contoso.com signed in to Office 365 Exchange Online from 203.0.113.50 (NL) "
        "using IMAP4 (legacy authentication)"
    )
    assert risky.details["risk_level_during_sign_in"] == "high"
    assert risky.details["risk_state"] == "atRisk"
    assert risky.details["risk_event_types"] == ["anonymizedIPAddress", "unfamiliarFeatures"]
    assert risky.display_summary.endswith(
        "— sign-in risk high (anonymizedIPAddress, unfamiliarFeatures)"
    )


def test_beta_sign_ins_of_service_principals_and_non_interactive_users(
    records: list[dict[str, Any]], mappings: Mappings
) -> None:
    base = copy.deepcopy(record_of(records, "bob.secops"))
    service = {
        **base,
        "signInEventTypes": ["servicePrincipal"],
        "userPrincipalName": "",
        "userDisplayName": "",
        "userId": "",
        "servicePrincipalId": "5d1c2a1e-0000-4000-8000-0000000000aa",
        "servicePrincipalName": "backup-automation",
        "appDisplayName": "Microsoft Graph",
        "appId": "00000003-0000-0000-c000-000000000000",
        "resourceDisplayName": "Microsoft Graph",
    }
    quiet = {
        **base,
        "signInEventTypes": ["nonInteractiveUser"],
        "isInteractive": False,
        "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
    }

    by_app = mapped(service, mappings)
    by_user = mapped(quiet, mappings)

    assert by_app.operation == "Service principal sign-in"
    assert by_app.category == "Service principal sign-in"
    assert by_app.actor.type == "app"
    assert by_app.actor.display_name == "backup-automation"
    assert by_app.actor.id == "5d1c2a1e-0000-4000-8000-0000000000aa"
    assert by_app.display_summary == (
        "Service principal backup-automation signed in to Microsoft Graph from 203.0.113.31 (NL)"
    )
    assert by_user.operation == "Non-interactive sign-in"
    assert by_user.actor.user_agent == "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
    assert by_user.display_summary == (
        "bob.secops@contoso.com signed in to Microsoft Teams without interaction from "
        "203.0.113.31 (NL)"
    )


def test_a_sign_in_without_ip_or_location_leaves_no_dangling_words(
    records: list[dict[str, Any]], mappings: Mappings
) -> None:
    bare = {**record_of(records, "bob.secops"), "ipAddress": None, "location": None}

    event = mapped(bare, mappings)

    assert event.display_summary == "bob.secops@contoso.com signed in to Microsoft Teams"
    assert event.actor.location is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"createdDateTime": None}, "createdDateTime: Field required"),
        ({"createdDateTime": "last Tuesday"}, "createdDateTime: Input should be a valid datetime"),
    ],
)
def test_a_sign_in_without_a_time_is_a_dead_letter_with_the_reason(
    records: list[dict[str, Any]], mappings: Mappings, change: dict[str, Any], reason: str
) -> None:
    outcome = normalize_message(raw_record("signins", {**records[0], **change}), mappings, now=NOW)

    assert isinstance(outcome, DeadLetter)
    assert outcome.reason.startswith("invalid signIn record: ")
    assert reason in outcome.reason


def test_an_optional_field_of_an_unexpected_shape_is_left_out_not_a_reason_to_drop_it(
    records: list[dict[str, Any]], mappings: Mappings
) -> None:
    odd = {**records[0], "status": {"errorCode": "bad"}, "location": "Amsterdam"}

    event = mapped(odd, mappings)

    assert event.result == "unknown"  # nothing else in the record says how it ended
    assert event.actor.location is None
    assert event.actor_display == records[0]["userPrincipalName"]
