"""The sign-in rules on the sample sign-ins, and the two kinds of rule they need: a sequence
(`preceded_by`: many failures, then a success) and a new value (`new_value`: a new country), both
judged on event time whatever order the events arrive in (Graph lists newest first)."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from aoc_alerter.core import Evaluation, GroupState, find_hits, raise_alerts
from aoc_alerter.default_rules import default_rules
from aoc_common.events import CanonicalEvent, GeoLocation
from aoc_common.rules import Alert, Rule
from tests.utils.alerts import a_variant
from tests.utils.records import signin_events

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SIGNIN_RULES = [rule for rule in default_rules() if rule.id.startswith("default-signin-")]


@pytest.fixture(scope="module")
def events(fixtures_dir: Path) -> list[CanonicalEvent]:
    return signin_events(fixtures_dir)


def evaluate(
    rules: list[Rule], batches: list[list[CanonicalEvent]]
) -> tuple[list[Alert], dict[str, GroupState]]:
    """The alerter core over consecutive batches, carrying the stored state between them."""
    states: dict[str, GroupState] = {}
    alerts: dict[str, Alert] = {}
    for batch in batches:
        raised, changed = raise_alerts(find_hits(rules, batch, Evaluation()), states, NOW)
        states.update(changed)
        for alert in raised:
            alerts.setdefault(alert.id, alert)
    return list(alerts.values()), states


def one_of(events: list[CanonicalEvent], user: str, **details: object) -> CanonicalEvent:
    return next(
        e
        for e in events
        if e.actor_display.startswith(user)
        and all(e.details.get(k) == v for k, v in details.items())
    )


def test_each_sign_in_rule_fires_on_exactly_its_sample_sign_ins(events: list[CanonicalEvent]):
    alerts, _ = evaluate(default_rules(), [events])
    by_rule: dict[str, list[Alert]] = defaultdict(list)
    for alert in alerts:
        by_rule[alert.rule_id].append(alert)

    assert {rule: len(found) for rule, found in by_rule.items()} == {
        "default-signin-failures-then-success": 1,
        "default-signin-new-country": 2,
        "default-signin-legacy-authentication": 1,
        "default-signin-risky": 1,
    }  # and no admin rule fires on a sign-in
    id_of = {e.id: e for e in events}

    [burst] = by_rule["default-signin-failures-then-success"]
    success = max(
        (e for e in events if e.actor_display.startswith("megan")), key=lambda e: e.timestamp
    )
    assert burst.severity == "high" and burst.group_value == "megan.bowen@contoso.com"
    assert burst.event_ids[-1] == success.id and success.result == "success"
    failures = [id_of[i] for i in burst.event_ids[:-1]]
    assert len(failures) >= 10
    assert all(f.result == "failure" and f.actor.ip_address == "192.0.2.66" for f in failures)
    assert all(
        timedelta(0) <= success.timestamp - f.timestamp <= timedelta(minutes=10) for f in failures
    )
    assert burst.summary.endswith(
        "failed sign-ins by megan.bowen@contoso.com within 600 s, then: megan.bowen@contoso.com "
        "signed in to OfficeHome from 192.0.2.66 (BR)"
    )

    countries = {
        (a.group_value, id_of[a.event_ids[0]].actor.location.country_or_region)  # type: ignore[union-attr]
        for a in by_rule["default-signin-new-country"]
    }
    assert countries == {("alex.wilber@contoso.com", "US"), ("megan.bowen@contoso.com", "BR")}
    alex = next(
        a for a in by_rule["default-signin-new-country"] if a.group_value.startswith("alex")
    )  # type: ignore[union-attr]
    # How many earlier sign-ins were seen when it fired depends on the arrival order (3 or 4).
    assert re.match(
        r"new country US for alex\.wilber@contoso\.com \([34] earlier events seen, from: NL\): "
        r"alex\.wilber@contoso\.com signed in to Office 365 Exchange Online from 203\.0\.113\.77",
        alex.summary,
    )

    [legacy] = by_rule["default-signin-legacy-authentication"]
    assert id_of[legacy.event_ids[0]].details["client_app"] == "IMAP4"
    [risky] = by_rule["default-signin-risky"]
    assert id_of[risky.event_ids[0]].actor_display == "diego.siciliani@contoso.com"


@pytest.mark.parametrize("order", ["oldest first", "newest first", "shuffled", "batches of 3"])
def test_the_same_alerts_come_whatever_order_the_sign_ins_arrive_in(
    events: list[CanonicalEvent], order: str
):
    expected = {alert.id for alert in evaluate(SIGNIN_RULES, [events])[0]}
    ordered = sorted(events, key=lambda e: e.timestamp)
    batches = {
        "oldest first": [ordered],
        "newest first": [ordered[::-1]],
        "shuffled": [random.Random(11).sample(events, len(events))],
        "batches of 3": [events[n : n + 3] for n in range(0, len(events), 3)],
    }[order]

    alerts, _ = evaluate(SIGNIN_RULES, batches)

    assert {alert.id for alert in alerts} == expected and len(expected) == 5


def test_reading_the_sign_ins_again_raises_no_new_alert(events: list[CanonicalEvent]):
    alerts, states = evaluate(SIGNIN_RULES, [events])

    again, _ = raise_alerts(find_hits(SIGNIN_RULES, events, Evaluation()), states, NOW)

    assert len(alerts) == 5
    assert again == []


def test_a_user_seen_for_the_first_time_or_with_little_history_raises_no_new_country(
    events: list[CanonicalEvent],
):
    rules = [r for r in SIGNIN_RULES if r.id == "default-signin-new-country"]
    home = one_of(events, "bob.secops")
    start = home.timestamp
    away = home.actor.model_copy(
        update={"location": GeoLocation(city="Lima", country_or_region="PE")}
    )

    def history(n: int) -> list[CanonicalEvent]:
        earlier = [a_variant(home, f"h{n}:{i}", at=start + timedelta(days=i)) for i in range(n)]
        trip = a_variant(home, f"trip{n}", at=start + timedelta(days=n), actor=away)
        return [*earlier, trip]

    assert evaluate(rules, [[a_variant(home, "first", actor=away)]])[0] == []
    assert evaluate(rules, [history(2)])[0] == []  # still learning: fewer than 3 earlier
    [alert] = evaluate(rules, [history(3)])[0]
    assert alert.event_ids == [history(3)[-1].id]
    # A failed sign-in from the new country is no new country for the user.
    failed = a_variant(history(3)[-1], "failed-trip", result="failure")
    assert evaluate(rules, [[*history(3)[:-1], failed]])[0] == []


def test_nine_failures_then_a_success_or_ten_spread_over_more_than_ten_minutes_raise_nothing(
    events: list[CanonicalEvent],
):
    rules = [r for r in SIGNIN_RULES if r.id == "default-signin-failures-then-success"]
    failure = one_of(events, "megan.bowen", sign_in_status="failure")
    success = one_of(events, "bob.secops").model_copy(
        update={"actor": failure.actor, "actor_display": failure.actor_display}
    )
    at = failure.timestamp

    def attempts(count: int, every: timedelta) -> list[CanonicalEvent]:
        tries = [a_variant(failure, f"f{count}:{i}", at=at + i * every) for i in range(count)]
        done = a_variant(success, f"s{count}:{every}", at=at + count * every)
        return [*tries, done]

    assert evaluate(rules, [attempts(9, timedelta(seconds=30))])[0] == []
    assert evaluate(rules, [attempts(10, timedelta(seconds=66))])[0] == []  # 11 minutes
    [alert] = evaluate(rules, [attempts(10, timedelta(seconds=30))])[0]
    assert len(alert.event_ids) == 11


def test_a_sequence_or_new_value_rule_needs_a_group_and_takes_one_kind_of_state():
    base = {
        "id": "r",
        "name": "r",
        "match": {"all": [{"field": "result", "op": "equals", "value": "success"}]},
    }
    sequence = {
        "match": {"all": [{"field": "result", "op": "equals", "value": "failure"}]},
        "count": 5,
        "window_seconds": 60,
    }
    new_value = {"field": "actor.location.country_or_region"}

    Rule.model_validate({**base, "group_by": "actor_display", "preceded_by": sequence})
    with pytest.raises(ValidationError, match="`preceded_by` needs `group_by`"):
        Rule.model_validate({**base, "preceded_by": sequence})
    with pytest.raises(ValidationError, match="one of threshold, preceded_by, new_value"):
        Rule.model_validate(
            {
                **base,
                "group_by": "actor_display",
                "new_value": new_value,
                "threshold": {"count": 2, "window_seconds": 60},
            }
        )
    with pytest.raises(ValidationError, match="field path"):
        Rule.model_validate({**base, "group_by": "actor_display", "new_value": {"field": "a..b"}})
