"""The shipped rules on the fixtures: exactly these events fire exactly these rules, nothing else."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aoc_alerter.core import Evaluation, find_hits, raise_alerts
from aoc_alerter.default_rules import default_rules
from aoc_common.events import CanonicalEvent
from tests.alerter.builders import a_burst
from tests.builders import fixture_events

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

# dedupe_key of every fixture event each default rule must fire on (and no other event).
EXPECTED = {
    "default-mailbox-forwarding-external": [
        # Set-Mailbox -ForwardingSmtpAddress smtp:exfil@evil.example; the New-InboxRule records
        # carry no forwarding parameter and must not fire.
        "unified:d8d4250d-89df-5e79-bf7b-6c6c3c2496eb",
        "unified:1e84fb36-3b9e-dacb-4b2e-7245e07b59d8",
        "unified:406c6132-6564-d134-1097-0046538ae1c1",
        "unified:570b534d-5e63-af16-0996-9e7c37b79c48",
    ],
    "default-privileged-role-member-added": [
        # Successful "Add member to role" (Graph) and "Add member to role." (Management API);
        # the failed attempts (…_0009, 9db59658…) must not fire.
        "directory:Directory_0F17A300_0007",
        "directory:Directory_535B6A43_0028",
        "directory:Directory_F637A468_0042",
        "directory:Directory_816B2332_0046",
        "directory:Directory_F21201E4_0054",
        "unified:43abd7ad-c8ed-3213-cac8-a61c2b32ada9",
        "unified:93cde609-5e73-252b-fd91-4b0e60307b75",
    ],
    "default-service-principal-credentials-added": [
        "directory:Directory_930D6EAF_0003",
        "directory:Directory_774B15D7_0014",
        "directory:Directory_BE4C5CE6_0021",
        "directory:Directory_F3D74F82_0031",
    ],
    "default-conditional-access-policy-changed": [
        "directory:Directory_8CA81811_0008",
        "directory:Directory_804C25D6_0024",  # published twice (page overlap): one alert
        "directory:Directory_9556585E_0025",
        "directory:Directory_16E6FEC3_0035",
        "directory:Directory_1C0502C6_0037",
        "directory:Directory_D6CFF718_0057",
    ],
    "default-site-collection-admin-added": [
        # 1032888d… is a failed SiteCollectionAdminAdded: no alert.
        "unified:a4fc8621-5d20-c6a6-cd5e-4aa0ff2282e6",
        "unified:2bf39775-8124-7dd4-bcbc-58a35eef9b8b",
        "unified:2907db86-e421-9307-d316-15e5b02ef5f7",
    ],
    "default-guest-added-to-team": [
        # MemberAdded of guestN@fabrikam.com by a contoso.com admin.
        "unified:8cd03260-74aa-f340-997a-20be63cc537b",
        "unified:6e3bbc97-5bcb-9370-20e2-7c17112ed1df",
        "unified:1c0df645-d0a3-2611-b14a-ed54bb69e1f0",
    ],
    # The fixtures delete users one at a time, days apart: below the threshold.
    "default-mass-user-deletion": [],
    # The sign-in rules: the admin fixtures hold no sign-ins (see test_signin_rules.py).
    "default-signin-failures-then-success": [],
    "default-signin-new-country": [],
    "default-signin-legacy-authentication": [],
    "default-signin-risky": [],
}
EXPECTED_ALERTS = sum(len(keys) for keys in EXPECTED.values())


@pytest.fixture(scope="module")
def events(fixtures_dir: Path) -> list[CanonicalEvent]:
    return fixture_events(fixtures_dir)


def alerts_by_rule(events: list[CanonicalEvent]) -> dict[str, list[str]]:
    """rule id → dedupe keys of the events in its alerts, after the whole stream."""
    rules = default_rules()
    hits = find_hits(rules, events, Evaluation())
    alerts, _ = raise_alerts(hits, {}, NOW)
    key_of = {event.id: event.dedupe_key for event in events}
    fired: dict[str, list[str]] = defaultdict(list)
    for alert in alerts:
        fired[alert.rule_id] += [key_of[event_id] for event_id in alert.event_ids]
    return {rule.id: sorted(fired[rule.id]) for rule in rules}


def test_each_default_rule_fires_on_exactly_its_fixture_events(events: list[CanonicalEvent]):
    assert alerts_by_rule(events) == {rule: sorted(keys) for rule, keys in EXPECTED.items()}


def test_the_default_rules_are_the_admin_threats_and_sign_in_classics_with_unique_ids():
    rules = default_rules()
    assert [rule.id for rule in rules] == list(EXPECTED)
    assert all(rule.enabled and rule.description for rule in rules)


def test_a_burst_of_five_deletions_by_one_actor_in_ten_minutes_is_one_mass_deletion_alert(
    events: list[CanonicalEvent],
):
    deletion = next(e for e in events if e.dedupe_key == "directory:Directory_353C631C_0013")
    burst = a_burst(deletion, 7, every=timedelta(minutes=1))
    rules = [rule for rule in default_rules() if rule.id == "default-mass-user-deletion"]

    alerts, _ = raise_alerts(find_hits(rules, burst, Evaluation()), {}, NOW)

    assert len(alerts) == 1  # the 6th and 7th deletions fall in the suppression period
    assert alerts[0].severity == "critical"
    assert alerts[0].group_value == deletion.actor_display
    assert alerts[0].event_ids == [event.id for event in burst[:5]]


def test_four_deletions_in_ten_minutes_or_five_spread_over_an_hour_raise_nothing(
    events: list[CanonicalEvent],
):
    deletion = next(e for e in events if e.dedupe_key == "directory:Directory_353C631C_0013")
    rules = [rule for rule in default_rules() if rule.id == "default-mass-user-deletion"]

    for burst in (
        a_burst(deletion, 4, every=timedelta(minutes=2)),
        a_burst(deletion, 5, every=timedelta(minutes=15)),
    ):
        alerts, _ = raise_alerts(find_hits(rules, burst, Evaluation()), {}, NOW)
        assert alerts == []


def test_forwarding_inside_the_admins_own_domain_raises_nothing(events: list[CanonicalEvent]):
    forwarding = next(e for e in events if e.dedupe_key.startswith("unified:d8d4250d"))
    raw = dict(forwarding.raw)
    raw["Parameters"] = [
        {"Name": "Identity", "Value": "mbx0@contoso.com"},
        {"Name": "ForwardingSmtpAddress", "Value": "smtp:archive@contoso.com"},
    ]
    internal = forwarding.model_copy(update={"raw": raw})
    inbox_rule = forwarding.model_copy(
        update={
            "operation": "New-InboxRule",
            "raw": {
                **raw,
                "Parameters": [{"Name": "ForwardTo", "Value": "x@contoso.com;y@evil.example"}],
            },
        }
    )

    fired = {
        hit.event.operation
        for hit in find_hits(default_rules(), [internal, inbox_rule], Evaluation())
    }

    assert fired == {"New-InboxRule"}  # the inbox rule's second address is external
