"""The shipped rules on the fixtures: exactly these events fire exactly these rules, nothing else."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aoc_alerter.core import Evaluation, find_hits, raise_alerts
from aoc_alerter.default_rules import default_rules
from aoc_common.events import CanonicalEvent
from tests.utils.alerts import a_burst
from tests.utils.expected import DEFAULT_RULE_HITS
from tests.utils.records import fixture_events

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


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
    assert alerts_by_rule(events) == {
        rule: sorted(keys) for rule, keys in DEFAULT_RULE_HITS.items()
    }


def test_the_default_rules_are_the_admin_threats_and_sign_in_classics_with_unique_ids():
    rules = default_rules()
    assert [rule.id for rule in rules] == list(DEFAULT_RULE_HITS)
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
