"""AOC's own detections as Sigma rules (services/alerter/sigma_rules) on the demo data: each fires
exactly where its native twin does, and the four of the issue are pinned by their events."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aoc_alerter.core import Evaluation, GroupState, find_hits, raise_alerts
from aoc_alerter.default_rules import default_rules
from aoc_alerter.sigma_loading import bundled_sigma_rules, rules_from
from aoc_common.events import CanonicalEvent
from aoc_common.rules import Alert, Rule
from tests.utils.alerts import a_variant
from tests.utils.expected import DEFAULT_RULE_HITS
from tests.utils.records import fixture_events, signin_events

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PLACEHOLDERS = {"internal_domains": ["contoso.com", "contoso.onmicrosoft.com"]}
# Native rule → its Sigma twins (one per log source where Microsoft logs the action twice).
TWINS = {
    "default-mailbox-forwarding-external": [
        "Mailbox forwarding to an external address",
        "Inbox rule forwarding to an external address",
    ],
    "default-privileged-role-member-added": [
        "Member added to a privileged role",
        "Member added to a privileged role (Management Activity)",
    ],
    "default-service-principal-credentials-added": [
        "Credentials added to a service principal",
        "Credentials added to a service principal (Management Activity)",
    ],
    "default-conditional-access-policy-changed": [
        "Conditional access policy changed",
        "Conditional access policy changed (Management Activity)",
    ],
    "default-site-collection-admin-added": ["Site collection admin added"],
    "default-guest-added-to-team": ["Guest added to a team"],
    "default-mass-user-deletion": ["Mass user deletion"],
    "default-signin-failures-then-success": ["Many failed sign-ins, then a success"],
    "default-signin-legacy-authentication": ["Legacy authentication sign-in"],
    "default-signin-risky": ["Risky sign-in"],
}


@pytest.fixture(scope="module")
def sigma_rules() -> list[Rule]:
    report = rules_from([bundled_sigma_rules()], PLACEHOLDERS)
    assert report.result.refusals == []
    return report.loaded


@pytest.fixture(scope="module")
def events(fixtures_dir: Path) -> list[CanonicalEvent]:
    return [*fixture_events(fixtures_dir), *signin_events(fixtures_dir)]


def evaluate(rules: list[Rule], batches: list[list[CanonicalEvent]]) -> list[Alert]:
    states: dict[str, GroupState] = {}
    alerts: dict[str, Alert] = {}
    for batch in batches:
        evaluation = Evaluation()
        raised, changed = raise_alerts(
            find_hits(rules, batch, evaluation, placeholders=PLACEHOLDERS), states, NOW
        )
        assert evaluation.refused == {}
        states.update(changed)
        for alert in raised:
            alerts.setdefault(alert.id, alert)
    return list(alerts.values())


def fired(rules: list[Rule], events: list[CanonicalEvent]) -> dict[str, set[str]]:
    """rule name → dedupe keys of the events its alerts name (the last: the one that fired)."""
    key_of = {event.id: event.dedupe_key for event in events}
    found: dict[str, set[str]] = defaultdict(set)
    for alert in evaluate(rules, [events]):
        found[alert.rule_name].add(key_of[alert.event_ids[-1]])
    return found


def test_every_default_rule_but_new_country_ships_as_sigma_rules_that_all_load(
    sigma_rules: list[Rule],
):
    natives = {rule.id for rule in default_rules()}
    assert natives - set(TWINS) == {"default-signin-new-country"}  # no first-seen in Sigma
    assert sorted(rule.name for rule in sigma_rules) == sorted(
        name for names in TWINS.values() for name in names
    )
    assert all(rule.id == f"sigma-{rule.sigma.id}" for rule in sigma_rules if rule.sigma)


def test_without_internal_domains_the_forwarding_rules_are_refused_with_the_reason():
    refusals = rules_from([bundled_sigma_rules()]).result.refusals

    assert sorted(r.title or "" for r in refusals) == [
        "Guest added to a team",
        "Inbox rule forwarding to an external address",
        "Mailbox forwarding to an external address",
    ]
    assert all("placeholder %internal_domains% has no value" in r.reason for r in refusals)
    assert all(r.origin.endswith(".yml") for r in refusals)


def test_each_sigma_twin_fires_on_the_demo_data_exactly_where_its_native_rule_does(
    sigma_rules: list[Rule], events: list[CanonicalEvent]
):
    native = fired(default_rules(), events)
    sigma = fired(sigma_rules, events)
    by_id = {rule.id: rule.name for rule in default_rules()}

    for rule_id, twins in TWINS.items():
        from_sigma = set().union(*(sigma.get(name, set()) for name in twins))
        assert from_sigma == native.get(by_id[rule_id], set()), rule_id


def test_the_forwarding_and_role_rules_fire_on_exactly_the_pinned_demo_events(
    sigma_rules: list[Rule], events: list[CanonicalEvent]
):
    sigma = fired(sigma_rules, events)

    assert sigma["Mailbox forwarding to an external address"] == set(
        DEFAULT_RULE_HITS["default-mailbox-forwarding-external"]
    )
    assert sigma.get("Inbox rule forwarding to an external address", set()) == set()
    assert sigma["Member added to a privileged role"] | sigma[
        "Member added to a privileged role (Management Activity)"
    ] == set(DEFAULT_RULE_HITS["default-privileged-role-member-added"])


def test_a_new_inbox_rule_forwarding_outside_fires_both_rules_and_an_internal_one_neither(
    sigma_rules: list[Rule], events: list[CanonicalEvent]
):
    inbox_rule = next(e for e in events if e.operation == "New-InboxRule")

    def forwarding_to(address: str, key: str) -> CanonicalEvent:
        parameters = [*inbox_rule.raw["Parameters"], {"Name": "ForwardTo", "Value": address}]
        return a_variant(inbox_rule, key, raw={**inbox_rule.raw, "Parameters": parameters})

    outside = forwarding_to("exfil@evil.example", "unified:inbox-outside")
    inside = forwarding_to("team@contoso.com", "unified:inbox-inside")

    native = fired(default_rules(), [outside, inside])
    sigma = fired(sigma_rules, [outside, inside])

    assert native["Mailbox forwarding to an external address"] == {"unified:inbox-outside"}
    assert sigma == {"Inbox rule forwarding to an external address": {"unified:inbox-outside"}}


def test_the_failed_sign_ins_then_success_correlation_fires_with_the_native_rule_in_any_order(
    sigma_rules: list[Rule], events: list[CanonicalEvent]
):
    signins = [e for e in events if e.source == "signins"]
    [rule] = [r for r in sigma_rules if r.name == "Many failed sign-ins, then a success"]
    [native] = [r for r in default_rules() if r.id == "default-signin-failures-then-success"]
    [expected] = evaluate([native], [signins])
    ordered = sorted(signins, key=lambda e: e.timestamp)

    for batches in (
        [ordered],
        [ordered[::-1]],
        [random.Random(5).sample(signins, len(signins))],
        [signins[n : n + 3] for n in range(0, len(signins), 3)],
    ):
        [alert] = evaluate([rule], batches)
        assert alert.event_ids[-1] == expected.event_ids[-1]  # the same successful sign-in
        assert alert.group_value == expected.group_value
        assert len(alert.event_ids) >= 11


def test_sigma_alerts_carry_the_rules_title_level_tags_and_references(
    sigma_rules: list[Rule], events: list[CanonicalEvent]
):
    alerts = evaluate(sigma_rules, [events])
    [forwarding, *_] = [a for a in alerts if a.rule_name.startswith("Mailbox forwarding")]

    assert (forwarding.severity, forwarding.level) == ("high", "high")
    assert forwarding.sigma_id == "478e343d-ff04-5f44-ae2f-94c12da1bc52"
    assert forwarding.tags == ["attack.collection", "attack.t1114.003"]
    assert forwarding.references[0] == "https://attack.mitre.org/techniques/T1114/003/"


CORRELATIONS = """\
title: Set-Mailbox
id: 11111111-0000-4000-8000-000000000001
name: set_mailbox
logsource: {product: m365, service: exchange}
detection:
    selection: {Operation: Set-Mailbox}
    condition: selection
---
title: New-InboxRule
id: 11111111-0000-4000-8000-000000000002
name: new_inbox_rule
logsource: {product: m365, service: exchange}
detection:
    selection: {Operation: New-InboxRule}
    condition: selection
---
title: Forwarding then an inbox rule, in order
id: 11111111-0000-4000-8000-000000000003
correlation:
    type: temporal_ordered
    rules: [set_mailbox, new_inbox_rule]
    group-by: [UserId]
    timespan: 1h
level: high
---
title: Mailboxes changed by one admin
id: 11111111-0000-4000-8000-000000000004
correlation:
    type: value_count
    rules: [set_mailbox]
    group-by: [UserId]
    timespan: 1h
    condition: {gte: 3, field: ObjectId}
level: medium
"""


def test_temporal_ordered_and_value_count_correlations_run_on_event_time(
    events: list[CanonicalEvent],
):
    from aoc_common.sigma import compile_text, to_rule

    result = compile_text(CORRELATIONS)
    assert result.refusals == []
    rules = [to_rule(c, result.documents[c.meta.sigma_id], origin="test") for c in result.rules]
    by_name = {rule.name: rule for rule in rules}
    assert set(by_name) == {
        "Forwarding then an inbox rule, in order",
        "Mailboxes changed by one admin",
    }
    mailbox = next(e for e in events if e.operation == "Set-Mailbox")
    inbox = next(e for e in events if e.operation == "New-InboxRule")
    admin = {"UserId": "eve@contoso.com"}
    at = mailbox.timestamp

    def variant(event: CanonicalEvent, key: str, minutes: int, **raw: str) -> CanonicalEvent:
        return a_variant(
            event, key, at=at + timedelta(minutes=minutes), raw={**event.raw, **admin, **raw}
        )

    forwarding = variant(mailbox, "unified:m1", 0, ObjectId="a@contoso.com")
    rule_after = variant(inbox, "unified:i1", 10)
    rule_before = variant(inbox, "unified:i0", -10)
    ordered = by_name["Forwarding then an inbox rule, in order"]
    # In order within the hour: one alert whichever arrives first; reversed order: none.
    for batch in ([forwarding, rule_after], [rule_after, forwarding]):
        [alert] = evaluate([ordered], [batch])
        assert alert.event_ids == [forwarding.id, rule_after.id]
        assert alert.group_value == "eve@contoso.com"
    assert evaluate([ordered], [[rule_before, forwarding]]) == []
    # The same pair as an unordered `temporal` correlation: either order within the hour fires.
    unordered_text = CORRELATIONS.replace("type: temporal_ordered", "type: temporal")
    unordered = compile_text(unordered_text)
    [temporal] = [
        to_rule(c, unordered.documents[c.meta.sigma_id], origin="test")
        for c in unordered.rules
        if c.meta.title.startswith("Forwarding then")
    ]
    [alert] = evaluate([temporal], [[forwarding, rule_before]])
    assert alert.event_ids == [rule_before.id, forwarding.id]

    # value_count: 3 distinct mailboxes (a repeat of one does not count twice).
    changes = [
        variant(mailbox, f"unified:v{n}", n, ObjectId=f"{box}@contoso.com")
        for n, box in enumerate(["a", "a", "b", "c"])
    ]
    distinct = by_name["Mailboxes changed by one admin"]
    assert evaluate([distinct], [changes[:3]]) == []
    [alert] = evaluate([distinct], [changes])
    assert alert.event_ids == [changes[0].id, changes[2].id, changes[3].id]
    assert alert.summary.startswith("3 distinct values by eve@contoso.com")


# One Set-Mailbox event (ClientIP 198.51.100.0, UserId alice.admin@contoso.com, Parameters with
# ForwardingSmtpAddress smtp:exfil@evil.example) against detections using each feature.
DETECTIONS = [
    ("Operation: Set-Mailbox", True),
    ("Operation: set-mailbox", True),  # case-insensitive
    ("Operation|cased: set-mailbox", False),
    ("Operation|startswith: Set-", True),
    ("Operation|endswith: -Mailbox", True),
    ("Operation|contains: t-Mai", True),
    ("Operation: 'Set-*box'", True),
    ("Operation: 'S?t-Mailbox'", True),
    ("Operation|re: '^Set-M[a-z]+$'", True),
    ("Operation|re: '^set-mailbox$'", False),  # regular expressions are case-sensitive…
    ("Operation|re|i: '^set-mailbox$'", True),  # …unless flagged
    ("Operation: [New-InboxRule, Set-Mailbox]", True),
    ("Operation|contains|all: [Set, Mailbox]", True),
    ("Operation|contains|all: [Set, Inbox]", False),
    ("ClientIP|cidr: 198.51.100.0/24", True),
    ("ClientIP|cidr: 203.0.113.0/24", False),
    ("Parameters.ForwardingSmtpAddress|endswith: '@evil.example'", True),
    ("Parameters|contains: ForwardingSmtpAddress", True),
    ("UserId|base64: alice", False),
    ("RecordType|gte: 1", True),
    ("RecordType|lt: 1", False),
    ("ExternalAccess: false", True),
    ("SessionId: null", True),
    ("ObjectId|exists: true", True),
    ("DestFolder|exists: true", False),
    ("UserId|fieldref: UserId", True),
    ("UserId|windash|contains: '-admin'", False),
]


@pytest.mark.parametrize(("selection", "fires"), DETECTIONS)
def test_each_detection_feature_on_a_set_mailbox_event(
    events: list[CanonicalEvent], selection: str, fires: bool
):
    from aoc_common.sigma import compile_text, to_rule

    text = (
        "title: t\nid: 22222222-0000-4000-8000-000000000001\n"
        "logsource: {product: m365, service: exchange}\n"
        f"detection:\n    selection:\n        {selection}\n    condition: selection\n"
    )
    result = compile_text(text)
    assert result.refusals == [], result.refusals
    [rule] = [to_rule(c, result.documents[c.meta.sigma_id], origin="test") for c in result.rules]
    event = next(
        e for e in events if e.dedupe_key == "unified:d8d4250d-89df-5e79-bf7b-6c6c3c2496eb"
    )

    assert bool(find_hits([rule], [event], Evaluation())) is fires


@pytest.mark.parametrize(
    ("detection", "fires"),
    [
        ("keywords: [exfil@evil.example]\n    condition: keywords", True),
        ("keywords: ['*evil*']\n    condition: keywords", True),
        ("keywords: [nowhere.example]\n    condition: keywords", False),
        (
            "sel_a: {Operation: Set-Mailbox}\n    sel_b: {Operation: Nope}\n"
            "    condition: 1 of sel_*",
            True,
        ),
        (
            "sel_a: {Operation: Set-Mailbox}\n    sel_b: {Operation: Nope}\n"
            "    condition: all of sel_*",
            False,
        ),
        (
            "sel: {Operation: Set-Mailbox}\n    filter: {UserId|endswith: '@contoso.com'}\n"
            "    condition: sel and not filter",
            False,
        ),
        (
            "sel: {Operation: Set-Mailbox}\n    other: {UserId: bob@contoso.com}\n"
            "    condition: sel and not other",
            True,
        ),
    ],
)
def test_keywords_and_conditions(events: list[CanonicalEvent], detection: str, fires: bool):
    from aoc_common.sigma import compile_text, to_rule

    text = (
        "title: t\nid: 22222222-0000-4000-8000-000000000002\n"
        "logsource: {product: m365, service: exchange}\n"
        f"detection:\n    {detection}\n"
    )
    result = compile_text(text)
    assert result.refusals == [], result.refusals
    [rule] = [to_rule(c, result.documents[c.meta.sigma_id], origin="test") for c in result.rules]
    event = next(
        e for e in events if e.dedupe_key == "unified:d8d4250d-89df-5e79-bf7b-6c6c3c2496eb"
    )

    assert bool(find_hits([rule], [event], Evaluation())) is fires


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("logsource: {product: windows, category: process_creation}", "is not one AOC collects"),
        ("logsource: {product: m365, service: exchange}\ndetection:\n    s: {eventName: x}\n"
         "    condition: s", "unmapped field 'eventName'"),
        ("logsource: {product: m365, service: exchange}\ndetection:\n    s: {CreationTime|minute: 3}\n"
         "    condition: s", "unsupported value or modifier"),
        ("logsource: {product: m365, service: exchange}\ndetection:\n    s: {Operation: x}\n"
         "    condition: s | count() > 3", "pipe syntax"),
    ],
)  # fmt: skip
def test_rules_aoc_cannot_run_are_refused_with_the_reason(text: str, reason: str):
    from aoc_common.sigma import compile_text

    document = f"title: t\nid: 22222222-0000-4000-8000-000000000003\n{text}\n"
    if "detection" not in text:
        document += "detection:\n    s: {Image: x}\n    condition: s\n"
    result = compile_text(document)

    assert result.rules == []
    [refusal] = result.refusals
    assert reason in refusal.reason
