"""Rule evaluation on plain values: conditions, thresholds, suppression, stable ids, bad rules."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from aoc_alerter.core import (
    Evaluation,
    GroupState,
    condition_holds,
    find_hits,
    raise_alerts,
    resolve,
)
from aoc_common.events import CanonicalEvent
from aoc_common.query import timestamp_ms
from aoc_common.rules import Condition, Rule
from tests.utils.alerts import a_burst, a_rule
from tests.utils.records import fixture_events

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def set_mailbox(fixtures_dir: Path) -> CanonicalEvent:
    """Set-Mailbox by alice.admin@contoso.com forwarding mbx0 to smtp:exfil@evil.example."""
    events = fixture_events(fixtures_dir)
    return next(e for e in events if e.dedupe_key.startswith("unified:d8d4250d"))


def holds(event: CanonicalEvent, **condition: Any) -> bool:
    return condition_holds(
        Condition.model_validate(condition), event.model_dump(mode="json"), Evaluation()
    )


def test_paths_fan_out_through_lists_and_selectors_pick_list_elements(set_mailbox):
    document = set_mailbox.model_dump(mode="json")

    assert resolve(document, "raw.Parameters.Name") == ["Identity", "ForwardingSmtpAddress"]
    assert resolve(document, "raw.Parameters[Name=forwardingsmtpaddress].Value") == [
        "smtp:exfil@evil.example"
    ]
    assert resolve(document, "targets.display_name") == ["mbx0@contoso.com"]
    assert resolve(document, "raw.NoSuchField.Deeper") == []


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"field": "operation", "op": "equals", "value": "set-mailbox"}, True),
        (
            {"field": "operation", "op": "equals", "value": "set-mailbox", "case_sensitive": True},
            False,
        ),
        ({"field": "operation", "op": "in", "value": ["New-InboxRule", "Set-Mailbox"]}, True),
        ({"field": "raw.Parameters.Value", "op": "contains", "value": "EXFIL@"}, True),
        ({"field": "raw.Parameters.Value", "op": "regex", "value": r"^smtp:[^@]+@evil\."}, True),
        ({"field": "raw.Parameters.Value", "op": "regex", "value": r"^mbx\d+$"}, False),
        ({"field": "raw.ExternalAccess", "op": "equals", "value": False}, True),
        ({"field": "raw.ExternalAccess", "op": "equals", "value": "false"}, True),
        ({"field": "raw.ExternalAccess", "op": "equals", "value": 0}, False),
        ({"field": "raw.Parameters", "op": "exists"}, True),
        ({"field": "raw.Members", "op": "exists"}, False),
        ({"field": "raw.Members", "op": "exists", "value": False}, True),
        ({"field": "raw.Parameters.Value", "op": "external_address"}, True),
        ({"field": "raw.Parameters[Name=Identity].Value", "op": "external_address"}, False),
        ({"field": "result", "op": "equals", "value": "failure", "negate": True}, True),
    ],
)
def test_each_operator_tests_the_values_found_at_the_path(set_mailbox, condition, expected):
    assert holds(set_mailbox, **condition) is expected


def test_a_catastrophic_regex_is_stopped_by_its_timeout_and_counts_as_no_match(set_mailbox):
    hostile = set_mailbox.model_copy(update={"display_summary": "a" * 5000 + "!"})
    rule = a_rule(
        match={"all": [{"field": "display_summary", "op": "regex", "value": "^(a|aa)+$"}]}
    )
    evaluation = Evaluation()

    started = time.monotonic()
    hits = find_hits([rule], [hostile], evaluation)

    assert hits == []
    assert evaluation.regex_timeouts == 1
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"match": {"all": [], "any": []}}, "at least one condition"),
        ({"match": {"all": [{"field": "x", "op": "regex", "value": "("}]}}, "does not compile"),
        ({"match": {"all": [{"field": "x", "op": "regex", "value": "a" * 501}]}}, "1 to 500"),
        ({"match": {"all": [{"field": "x", "op": "in", "value": "not-a-list"}]}}, "`in` takes"),
        ({"match": {"all": [{"field": "a..b", "op": "exists"}]}}, "field path"),
        ({"match": {"all": [{"field": "a[b]", "op": "exists"}]}}, "field path"),
        ({"threshold": {"count": 1, "window_seconds": 60}}, "greater than or equal to 2"),
        ({"severity": "urgent"}, "severity"),
    ],
)
def test_invalid_rules_are_refused_with_the_reason(change: dict[str, Any], message: str):
    with pytest.raises(ValidationError) as raised:
        a_rule(**change)
    assert message in str(raised.value)


def test_the_same_event_read_twice_gives_the_same_alert_id(set_mailbox):
    rule = a_rule()
    first, _ = raise_alerts(find_hits([rule], [set_mailbox], Evaluation()), {}, NOW)
    again, _ = raise_alerts(
        find_hits([rule], [set_mailbox, set_mailbox], Evaluation()), {}, NOW + timedelta(days=1)
    )

    assert len(first) == 1 and [a.id for a in again] == [first[0].id]
    assert first[0].event_ids == [set_mailbox.id]
    assert first[0].summary == set_mailbox.display_summary


def test_suppression_keeps_one_alert_per_group_within_the_period(set_mailbox):
    rule = a_rule(group_by="actor_display", suppression_seconds=3600)
    events = a_burst(set_mailbox, 3, every=timedelta(minutes=20)) + a_burst(
        set_mailbox, 1, every=timedelta(0), prefix="later"
    )
    events[-1] = events[-1].model_copy(
        update={"timestamp": set_mailbox.timestamp + timedelta(hours=2)}
    )

    alerts, states = raise_alerts(find_hits([rule], events, Evaluation()), {}, NOW)

    assert [a.event_ids for a in alerts] == [[events[0].id], [events[-1].id]]
    assert [a.event_at for a in alerts] == [events[0].timestamp, events[-1].timestamp]
    (state,) = states.values()
    assert state.last_alert_ms == timestamp_ms(events[-1].timestamp)


def test_threshold_state_carried_across_batches_counts_each_event_once(set_mailbox):
    rule = a_rule(group_by="actor_display", threshold={"count": 3, "window_seconds": 600})
    burst = a_burst(set_mailbox, 3, every=timedelta(minutes=1))

    # Batch 1: two events. Batch 2 (after a restart): the second event again, redelivered.
    _, state = raise_alerts(find_hits([rule], burst[:2], Evaluation()), {}, NOW)
    stored = {key: GroupState.model_validate(value.model_dump()) for key, value in state.items()}
    redelivered, state = raise_alerts(find_hits([rule], burst[1:2], Evaluation()), stored, NOW)
    assert redelivered == [] and state == {}

    alerts, _ = raise_alerts(find_hits([rule], burst[2:], Evaluation()), stored, NOW)
    assert len(alerts) == 1
    assert alerts[0].event_ids == [event.id for event in burst]
    assert alerts[0].summary == "3 matching events by alice.admin@contoso.com within 600 s"
    # When it happened (the event that reached the count), beside when it was noticed.
    assert (alerts[0].event_at, alerts[0].created_at) == (burst[2].timestamp, NOW)

    replayed, _ = raise_alerts(find_hits([rule], burst, Evaluation()), {}, NOW)
    assert [a.id for a in replayed] == [alerts[0].id]


def test_thresholds_count_each_group_separately(set_mailbox):
    rule = a_rule(group_by="actor_display", threshold={"count": 2, "window_seconds": 600})
    alice = a_burst(set_mailbox, 1, every=timedelta(0), prefix="alice")
    bob = [
        e.model_copy(update={"actor_display": "bob.secops@contoso.com"})
        for e in a_burst(set_mailbox, 1, every=timedelta(0), prefix="bob")
    ]

    alerts, states = raise_alerts(find_hits([rule], alice + bob, Evaluation()), {}, NOW)

    assert alerts == [] and len(states) == 2


def test_disabled_rules_never_match(set_mailbox):
    assert find_hits([a_rule(enabled=False)], [set_mailbox], Evaluation()) == []


def test_a_rule_round_trips_through_json():
    rule = a_rule(threshold={"count": 5, "window_seconds": 60}, group_by="actor.id")
    assert Rule.model_validate_json(rule.model_dump_json()) == rule


def test_a_late_burst_still_counts_after_a_newer_event_of_the_same_group(set_mailbox):
    rule = a_rule(group_by="actor_display", threshold={"count": 3, "window_seconds": 600})
    newer = a_burst(set_mailbox, 1, every=timedelta(0), prefix="newer")[0].model_copy(
        update={"timestamp": set_mailbox.timestamp + timedelta(hours=6)}
    )
    late_burst = a_burst(set_mailbox, 3, every=timedelta(minutes=1))

    alerts, _ = raise_alerts(find_hits([rule], [newer, *late_burst], Evaluation()), {}, NOW)

    assert [a.event_ids for a in alerts] == [[e.id for e in late_burst]]
