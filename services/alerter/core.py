"""The alerter's logic without I/O: which rules an event matches, and which alerts that raises.

Evaluation is deterministic so that a replay of `aoc.events` never creates a duplicate alert: an alert's
id is a hash of the rule id and the keys of the events that triggered it (for a threshold, the first
event of the window), and windows and suppression run on event time, not on the clock. The state a
threshold or a suppression needs (`GroupState`) is handed in and handed back; the shell keeps it in
the event store, so it survives a restart. This module must never do I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aoc_common.consumed_events import DecodedEvents, decode_canonical_events
from aoc_common.events import CanonicalEvent
from aoc_common.message_log.base import Record
from aoc_common.query import timestamp_ms
from aoc_common.rules import Alert, Condition, Rule, compile_pattern, parse_path

STAGE = "alerter"
# A regular expression runs on at most this much of a value, and for at most this long: a pattern
# that backtracks catastrophically then costs one bounded search, never a stalled consumer.
MAX_REGEX_INPUT = 10_000
REGEX_TIMEOUT_S = 0.05
MAX_ALERT_EVENT_IDS = 100
ALLOWED_LATENESS_MS = 48 * 3600 * 1000
STATE_PREFIX = "alerter:group:"
ADDRESS_SEPARATORS = (";", ",", " ", "\t", "\n")


# --- decoding ------------------------------------------------------------------------------------


def decode_events(records: Sequence[Record]) -> DecodedEvents:
    """Every record becomes an event to evaluate or a dead letter saying why it cannot be."""
    return decode_canonical_events(records, stage=STAGE, reader="alerter")


# --- matching ------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """What went wrong while matching, without failing the batch: reported by the shell."""

    regex_timeouts: int = 0


def resolve(document: Any, path: str) -> list[Any]:
    """Every value at `path` in a JSON-like document; lists fan out at every step (as in MongoDB),
    and a `[Key=Value]` selector keeps the list elements whose `Key` equals `Value` (any case)."""
    current: list[Any] = [document]
    for segment in parse_path(path):
        found: list[Any] = []
        for item in current:
            if not isinstance(item, dict) or segment.name not in item:
                continue
            value = item[segment.name]
            found.extend(value if isinstance(value, list) else [value])
        if segment.select_key is not None:
            wanted = (segment.select_value or "").casefold()
            found = [
                item
                for item in found
                if isinstance(item, dict)
                and _text(item.get(segment.select_key)).casefold() == wanted
            ]
        current = found
    values: list[Any] = []
    for value in current:
        values.extend(value if isinstance(value, list) else [value])
    return [value for value in values if value is not None]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _equal(found: Any, expected: Any, case_sensitive: bool) -> bool:
    if isinstance(found, str) or isinstance(expected, str):
        left, right = _text(found), _text(expected)
        return left == right if case_sensitive else left.casefold() == right.casefold()
    if isinstance(found, bool) or isinstance(expected, bool):
        return isinstance(found, bool) and isinstance(expected, bool) and found is expected
    return bool(found == expected)


def email_domain(address: str) -> str | None:
    """`smtp:Exfil@Evil.example` → `evil.example`; None when it is not an address."""
    address = address.strip()
    if address[:5].casefold() == "smtp:":
        address = address[5:]
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or "." not in domain:
        return None
    return domain.strip(" <>\"'").casefold()


def _is_external(found: Any, home_domain: str | None) -> bool:
    """An address whose domain differs from the actor's (any address, when the actor has none)."""
    text = _text(found)
    for separator in ADDRESS_SEPARATORS:
        text = text.replace(separator, ";")
    domains = [email_domain(part) for part in text.split(";") if part]
    return any(domain is not None and domain != home_domain for domain in domains)


def condition_holds(condition: Condition, document: dict[str, Any], evaluation: Evaluation) -> bool:
    """The condition's test on the values found at its path, then `negate`."""
    values = resolve(document, condition.field)
    return _test(condition, values, document, evaluation) != condition.negate


def _test(
    condition: Condition, values: list[Any], document: dict[str, Any], evaluation: Evaluation
) -> bool:
    op, expected, case_sensitive = condition.op, condition.value, condition.case_sensitive
    if op == "exists":
        return bool(values) == (expected is not False)
    if op == "equals":
        return any(_equal(value, expected, case_sensitive) for value in values)
    if op == "in":
        assert isinstance(expected, list)
        return any(_equal(value, item, case_sensitive) for value in values for item in expected)
    if op == "contains":
        needle = _text(expected)
        if not case_sensitive:
            needle = needle.casefold()
        return any(
            needle in (_text(value) if case_sensitive else _text(value).casefold())
            for value in values
            if not isinstance(value, dict | list)
        )
    if op == "regex":
        pattern = compile_pattern(_text(expected), case_sensitive)
        for value in values:
            if isinstance(value, dict | list):
                continue
            try:
                if pattern.search(_text(value)[:MAX_REGEX_INPUT], timeout=REGEX_TIMEOUT_S):
                    return True
            except TimeoutError:
                evaluation.regex_timeouts += 1
        return False
    # external_address
    actor_upn = document.get("actor", {}).get("user_principal_name")
    home = email_domain(actor_upn) if isinstance(actor_upn, str) else None
    return any(_is_external(value, home) for value in values if not isinstance(value, dict))


def rule_matches(rule: Rule, document: dict[str, Any], evaluation: Evaluation) -> bool:
    """All `all` conditions hold and, when there are `any` conditions, at least one does."""
    if not all(condition_holds(c, document, evaluation) for c in rule.match.all):
        return False
    return not rule.match.any or any(
        condition_holds(c, document, evaluation) for c in rule.match.any
    )


@dataclass(frozen=True)
class Hit:
    """One event matching one rule, with the value of the rule's `group_by`."""

    rule: Rule
    event: CanonicalEvent
    group_value: str | None

    @property
    def state_key(self) -> str:
        return state_key(self.rule.id, self.group_value)

    @property
    def needs_state(self) -> bool:
        return self.rule.threshold is not None or self.rule.suppression_seconds > 0


def find_hits(
    rules: Sequence[Rule], events: Iterable[CanonicalEvent], evaluation: Evaluation
) -> list[Hit]:
    """Every (enabled rule, event) that matches, in event order."""
    enabled = [rule for rule in rules if rule.enabled]
    hits: list[Hit] = []
    for event in events:
        document = event.model_dump(mode="json")
        for rule in enabled:
            if rule_matches(rule, document, evaluation):
                hits.append(Hit(rule, event, group_value_of(rule, document)))
    return hits


def group_value_of(rule: Rule, document: dict[str, Any]) -> str | None:
    """The first value at `group_by` (as text), or None when the rule does not group."""
    if rule.group_by is None:
        return None
    values = resolve(document, rule.group_by)
    return _text(values[0])[:500] if values else ""


def state_key(rule_id: str, group_value: str | None) -> str:
    """Where one (rule, group)'s window lives in the store; the group is hashed to bound the key."""
    group_hash = hashlib.sha256((group_value or "").encode()).hexdigest()[:32]
    return f"{STATE_PREFIX}{rule_id}:{group_hash}"


# --- thresholds, suppression and alerts --------------------------------------------------------


class WindowEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at_ms: int
    dedupe_key: str
    event_id: str


class GroupState(BaseModel):
    """One (rule, group)'s recent matching events and last alert, in event time.

    Entries double as the record of what was already counted, so an event read again (a redelivered
    batch, a replay) is never counted twice.
    """

    model_config = ConfigDict(extra="forbid")

    entries: list[WindowEntry] = Field(default_factory=list)
    last_alert_ms: int | None = None


def alert_id_for(rule_id: str, *keys: str) -> str:
    digest = hashlib.sha256("\x1f".join((rule_id, *keys)).encode()).hexdigest()
    return f"alert-{digest[:32]}"


def _suppressed(state: GroupState, at_ms: int, suppression_ms: int) -> bool:
    return state.last_alert_ms is not None and abs(at_ms - state.last_alert_ms) < suppression_ms


def _summary(rule: Rule, hit: Hit, count: int) -> str:
    if rule.threshold is None:
        return hit.event.display_summary[:1000]
    window = rule.threshold.window_seconds
    group = f" by {hit.group_value}" if hit.group_value else ""
    return f"{count} matching events{group} within {window} s"[:1000]


def _alert(rule: Rule, hit: Hit, alert_id: str, event_ids: list[str], now: datetime) -> Alert:
    return Alert(
        id=alert_id,
        rule_id=rule.id,
        rule_name=rule.name,
        severity=rule.severity,
        created_at=now,
        summary=_summary(rule, hit, len(event_ids)),
        group_value=hit.group_value,
        event_ids=event_ids[:MAX_ALERT_EVENT_IDS],
        event_at=hit.event.timestamp,
    )


def raise_alerts(
    hits: Sequence[Hit], states: dict[str, GroupState], now: datetime
) -> tuple[list[Alert], dict[str, GroupState]]:
    """Alerts for the hits, in order, and the states they changed (only those).

    `states` holds the stored state of every key a hit needs (missing keys start empty); it is not
    modified. Alerts come out once per id even when a batch holds the same event twice.
    """
    working = {key: state.model_copy(deep=True) for key, state in states.items()}
    changed: set[str] = set()
    alerts: dict[str, Alert] = {}
    for hit in hits:
        rule, event = hit.rule, hit.event
        at_ms = timestamp_ms(event.timestamp)
        if not hit.needs_state:
            alert_id = alert_id_for(rule.id, event.dedupe_key)
            alerts.setdefault(alert_id, _alert(rule, hit, alert_id, [event.id], now))
            continue
        state = working.setdefault(hit.state_key, GroupState())
        suppression_ms = rule.suppression_seconds * 1000
        if rule.threshold is None:
            if _suppressed(state, at_ms, suppression_ms):
                continue
            alert_id = alert_id_for(rule.id, event.dedupe_key)
            alerts.setdefault(alert_id, _alert(rule, hit, alert_id, [event.id], now))
            state.last_alert_ms = at_ms
            changed.add(hit.state_key)
            continue
        if any(entry.dedupe_key == event.dedupe_key for entry in state.entries):
            continue  # counted already: a redelivery or a replay
        window_ms = rule.threshold.window_seconds * 1000
        state.entries.append(
            WindowEntry(at_ms=at_ms, dedupe_key=event.dedupe_key, event_id=event.id)
        )
        state.entries.sort(key=lambda entry: (entry.at_ms, entry.dedupe_key))
        # Audit records arrive late and out of order (the Management Activity API can lag by
        # hours), so entries are kept for the window plus ALLOWED_LATENESS behind the newest one:
        # a late burst still counts. Bounded, and enough to recognise what was counted already.
        oldest_kept = state.entries[-1].at_ms - window_ms - ALLOWED_LATENESS_MS
        keep = max(4 * rule.threshold.count, 200)
        state.entries = [e for e in state.entries if e.at_ms >= oldest_kept][-keep:]
        changed.add(hit.state_key)
        in_window = [
            entry
            for entry in state.entries
            if at_ms - window_ms <= entry.at_ms <= at_ms
            and (state.last_alert_ms is None or entry.at_ms > state.last_alert_ms)
        ]
        if len(in_window) < rule.threshold.count:
            continue
        if _suppressed(state, at_ms, max(suppression_ms, 1)):
            continue
        alert_id = alert_id_for(rule.id, hit.group_value or "", in_window[0].dedupe_key)
        event_ids = [entry.event_id for entry in in_window]
        alerts.setdefault(alert_id, _alert(rule, hit, alert_id, event_ids, now))
        state.last_alert_ms = at_ms
    return list(alerts.values()), {key: working[key] for key in changed}


# --- notification --------------------------------------------------------------------------------


def webhook_payload(alert: Alert) -> dict[str, Any]:
    """Teams- and Slack-compatible: both show `text`; other receivers can read `alert`."""
    group = f" ({alert.group_value})" if alert.group_value else ""
    text = (
        f"[{alert.severity.upper()}] {alert.rule_name}{group}: {alert.summary} "
        f"— {len(alert.event_ids)} event(s), alert {alert.id}"
    )
    return {"text": text, "alert": alert.model_dump(mode="json")}
