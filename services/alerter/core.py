"""The alerter's logic without I/O: which rules an event matches, and which alerts that raises.

Evaluation is deterministic so that a replay of `aoc.events` never creates a duplicate alert: an alert's
id is a hash of the rule id and the keys of the events that triggered it (for a threshold, the first
event of the window; for a sequence or a new value, the event that completed it), and windows and
suppression run on event time, not on the clock. The state a threshold, a sequence (`preceded_by`), a
new value or a suppression needs (`GroupState`) is handed in and handed back; the shell keeps it in
the event store, so it survives a restart. Sequences and new values are judged on event time whatever
order the events arrive in (Graph lists newest first). This module must never do I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aoc_alerter.sigma_logic import SigmaLogic, Temporal, sigma_logic
from aoc_common.events import CanonicalEvent
from aoc_common.query import timestamp_ms
from aoc_common.rules import Alert, Condition, Match, Rule, compile_pattern
from aoc_common.rules import resolve_path as resolve
from aoc_common.sigma import Refused

STAGE = "alerter"
# A regular expression runs on at most this much of a value, and for at most this long: a pattern
# that backtracks catastrophically then costs one bounded search, never a stalled consumer.
MAX_REGEX_INPUT = 10_000
REGEX_TIMEOUT_S = 0.05
MAX_ALERT_EVENT_IDS = 100
ALLOWED_LATENESS_MS = 48 * 3600 * 1000
STATE_PREFIX = "alerter:group:"
ADDRESS_SEPARATORS = (";", ",", " ", "\t", "\n")


# --- matching ------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """What went wrong while matching, without failing the batch: reported by the shell."""

    regex_timeouts: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # Sigma rule id → why it cannot run


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
    return rule.match is not None and _match_holds(rule.match, document, evaluation)


@dataclass(frozen=True)
class Hit:
    """One event matching one rule, with the value of the rule's `group_by`.

    `role` "preceding": the event matches the rule's `preceded_by` events, not the rule itself.
    `observed`: the event's value at the rule's `new_value` field.
    """

    rule: Rule
    event: CanonicalEvent
    group_value: str | None
    role: str = "match"
    observed: str | None = None
    temporal: Temporal | None = None

    @property
    def state_key(self) -> str:
        return state_key(self.rule.id, self.group_value)

    @property
    def needs_state(self) -> bool:
        rule = self.rule
        return (
            rule.threshold is not None
            or rule.preceded_by is not None
            or rule.new_value is not None
            or rule.suppression_seconds > 0
            or self.temporal is not None
        )


def find_hits(
    rules: Sequence[Rule],
    events: Iterable[CanonicalEvent],
    evaluation: Evaluation,
    *,
    placeholders: Mapping[str, Sequence[str]] | None = None,
) -> list[Hit]:
    """Every (enabled rule, event) that matches, in event order. A Sigma rule whose stored text no
    longer compiles is left out and named in `evaluation.refused` (the shell logs it)."""
    native = [rule for rule in rules if rule.enabled and rule.sigma is None]
    sigma: list[SigmaLogic] = []
    for rule in rules:
        if rule.enabled and rule.sigma is not None:
            try:
                sigma.append(sigma_logic(rule, placeholders))
            except Refused as refused:
                evaluation.refused[rule.id] = str(refused)
    hits: list[Hit] = []
    for event in events:
        document = event.model_dump(mode="json")
        for rule in native:
            if rule.match is not None and rule_matches(rule, document, evaluation):
                hit = _hit(rule, event, document)
                if hit is not None:
                    hits.append(hit)
            if rule.preceded_by is not None and _match_holds(
                rule.preceded_by.match, document, evaluation
            ):
                hits.append(Hit(rule, event, group_value_of(rule, document), role="preceding"))
        for logic in sigma:
            for found in logic.matches(document, evaluation):
                hits.append(
                    Hit(
                        logic.rule,
                        event,
                        found.group_value,
                        role=found.role,
                        observed=found.observed,
                        temporal=logic.temporal,
                    )
                )
    return hits


def _match_holds(match: Match, document: dict[str, Any], evaluation: Evaluation) -> bool:
    if not all(condition_holds(c, document, evaluation) for c in match.all):
        return False
    return not match.any or any(condition_holds(c, document, evaluation) for c in match.any)


def _hit(rule: Rule, event: CanonicalEvent, document: dict[str, Any]) -> Hit | None:
    """The rule's hit on the event; None for a `new_value` rule when the event has no value."""
    group = group_value_of(rule, document)
    if rule.threshold is not None and rule.threshold.distinct is not None:
        values = resolve(document, rule.threshold.distinct)
        if not values or isinstance(values[0], dict | list):
            return None  # no value to count
        return Hit(rule, event, group, observed=_text(values[0])[:200])
    if rule.new_value is None:
        return Hit(rule, event, group)
    values = resolve(document, rule.new_value.field)
    if not values or isinstance(values[0], dict | list) or _text(values[0]) == "":
        return None
    return Hit(rule, event, group, observed=_text(values[0])[:200])


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
    # Sequences and new values: the event's value, its summary (for an alert raised later, when an
    # earlier event arrives) and whether it was judged already (alerted, or suppressed).
    value: str | None = None
    summary: str | None = None
    alerted: bool = False


class GroupState(BaseModel):
    """One (rule, group)'s recent matching events and last alert, in event time.

    Entries double as the record of what was already counted, so an event read again (a redelivered
    batch, a replay) is never counted twice.
    """

    model_config = ConfigDict(extra="forbid")

    entries: list[WindowEntry] = Field(default_factory=list)
    last_alert_ms: int | None = None
    # `preceded_by`: events matching the rule itself, waiting for enough preceding ones.
    closing: list[WindowEntry] = Field(default_factory=list)
    # `new_value`: values of entries folded out of `entries` (the oldest), and how many there were.
    known_values: list[str] = Field(default_factory=list)
    history: int = 0


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
    counted = "distinct values" if rule.threshold.distinct is not None else "matching events"
    return f"{count} {counted}{group} within {window} s"[:1000]


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
        **_sigma_fields(rule),
    )


def _sigma_fields(rule: Rule) -> dict[str, Any]:
    """What an alert of a Sigma rule carries from it: ATT&CK tags, references, the Sigma id."""
    if rule.sigma is None:
        return {}
    return {
        "tags": list(rule.sigma.tags),
        "references": list(rule.sigma.references),
        "sigma_id": rule.sigma.id,
        "level": rule.sigma.level,
    }


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
        if rule.preceded_by is not None:
            if _sequence(hit, state, now, alerts):
                changed.add(hit.state_key)
            continue
        if rule.new_value is not None:
            if _new_value(hit, state, now, alerts):
                changed.add(hit.state_key)
            continue
        if hit.temporal is not None:
            if _temporal(hit, hit.temporal, state, now, alerts):
                changed.add(hit.state_key)
            continue
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
            WindowEntry(
                at_ms=at_ms, dedupe_key=event.dedupe_key, event_id=event.id, value=hit.observed
            )
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
        if rule.threshold.distinct is not None:
            in_window = _first_of_each_value(in_window)
        if len(in_window) < rule.threshold.count:
            continue
        if _suppressed(state, at_ms, max(suppression_ms, 1)):
            continue
        alert_id = alert_id_for(rule.id, hit.group_value or "", in_window[0].dedupe_key)
        event_ids = [entry.event_id for entry in in_window]
        alerts.setdefault(alert_id, _alert(rule, hit, alert_id, event_ids, now))
        state.last_alert_ms = at_ms
    return list(alerts.values()), {key: working[key] for key in changed}


def _first_of_each_value(entries: list[WindowEntry]) -> list[WindowEntry]:
    """A distinct-value threshold counts values: the first entry of each value in the window."""
    seen: set[str] = set()
    firsts: list[WindowEntry] = []
    for entry in entries:
        value = (entry.value or "").casefold()
        if value not in seen:
            seen.add(value)
            firsts.append(entry)
    return firsts


# --- sequences (`preceded_by`) and new values (`new_value`) ---------------------------------------

MAX_CLOSING_ENTRIES = 50
MAX_VALUE_ENTRIES = 200
MAX_KNOWN_VALUES = 500
MAX_SUMMARY = 300


def _entry(hit: Hit) -> WindowEntry:
    event = hit.event
    return WindowEntry(
        at_ms=timestamp_ms(event.timestamp),
        dedupe_key=event.dedupe_key,
        event_id=event.id,
        value=hit.observed,
        summary=event.display_summary[:MAX_SUMMARY],
    )


def _add(entries: list[WindowEntry], entry: WindowEntry) -> bool:
    """Insert in event-time order; False when the event is there already (a redelivery)."""
    if any(existing.dedupe_key == entry.dedupe_key for existing in entries):
        return False
    entries.append(entry)
    entries.sort(key=lambda e: (e.at_ms, e.dedupe_key))
    return True


def _sequence(hit: Hit, state: GroupState, now: datetime, alerts: dict[str, Alert]) -> bool:
    """A closing event with at least `count` preceding events of its group within the window
    before it raises one alert (id: rule, group, closing event). Either side may arrive first."""
    rule = hit.rule
    sequence = rule.preceded_by
    assert sequence is not None
    window_ms = sequence.window_seconds * 1000
    entry = _entry(hit)
    if hit.role == "preceding":
        if not _add(state.entries, entry):
            return False
        oldest_kept = state.entries[-1].at_ms - window_ms - ALLOWED_LATENESS_MS
        keep = max(4 * sequence.count, 200)
        state.entries = [e for e in state.entries if e.at_ms >= oldest_kept][-keep:]
    else:
        if not _add(state.closing, entry):
            return False
    suppression_ms = max(rule.suppression_seconds * 1000, 1)
    newest = max(e.at_ms for e in (*state.entries, *state.closing))
    horizon = newest - window_ms - ALLOWED_LATENESS_MS
    waiting: list[WindowEntry] = []
    for closing in state.closing:
        before = [e for e in state.entries if closing.at_ms - window_ms <= e.at_ms <= closing.at_ms]
        if len(before) < sequence.count:
            if closing.at_ms >= horizon:
                waiting.append(closing)  # preceding events may still arrive (late, or older)
            continue
        if _suppressed(state, closing.at_ms, suppression_ms):
            continue  # also what a redelivered closing event of an alert meets
        alert_id = alert_id_for(rule.id, hit.group_value or "", closing.dedupe_key)
        group = f" by {hit.group_value}" if hit.group_value else ""
        summary = (
            f"{len(before)} {sequence.label}{group} within {sequence.window_seconds} s, "
            f"then: {closing.summary or ''}"
        )
        preceding = [e.event_id for e in before][-(MAX_ALERT_EVENT_IDS - 1) :]
        event_ids = [*preceding, closing.event_id]
        alerts.setdefault(alert_id, _stateful_alert(rule, hit, alert_id, summary, event_ids, now))
        state.last_alert_ms = closing.at_ms
    state.closing = waiting[-MAX_CLOSING_ENTRIES:]
    return True


def _new_value(hit: Hit, state: GroupState, now: datetime, alerts: dict[str, Alert]) -> bool:
    """Each event, in event-time order, whose value none of the group's earlier events had, once
    the group has `min_history` earlier events, raises one alert (id: rule, group, event)."""
    rule = hit.rule
    watched = rule.new_value
    assert watched is not None
    if not _add(state.entries, _entry(hit)):
        return False
    if len(state.entries) > MAX_VALUE_ENTRIES:
        folded = state.entries[:-MAX_VALUE_ENTRIES]
        state.entries = state.entries[-MAX_VALUE_ENTRIES:]
        known = dict.fromkeys([*state.known_values, *(e.value or "" for e in folded)])
        state.known_values = list(known)[-MAX_KNOWN_VALUES:]
        state.history += len(folded)
    suppression_ms = max(rule.suppression_seconds * 1000, 1) if rule.suppression_seconds else 0
    seen = {value.casefold(): value for value in state.known_values}  # casefolded → as written
    count = state.history
    for entry in state.entries:
        value = (entry.value or "").casefold()
        if not entry.alerted and value not in seen and count >= watched.min_history:
            entry.alerted = True
            if not (suppression_ms and _suppressed(state, entry.at_ms, suppression_ms)):
                alert_id = alert_id_for(rule.id, hit.group_value or "", entry.dedupe_key)
                earlier = ", ".join(sorted(seen.values()))[:200]
                summary = (
                    f"new {watched.label} {entry.value} for {hit.group_value} "
                    f"({count} earlier events seen, from: {earlier}): {entry.summary or ''}"
                )
                alerts.setdefault(
                    alert_id, _stateful_alert(rule, hit, alert_id, summary, [entry.event_id], now)
                )
                state.last_alert_ms = entry.at_ms
        seen.setdefault(value, entry.value or "")
        count += 1
    return True


def _stateful_alert(
    rule: Rule, hit: Hit, alert_id: str, summary: str, event_ids: list[str], now: datetime
) -> Alert:
    return Alert(
        id=alert_id,
        rule_id=rule.id,
        rule_name=rule.name,
        severity=rule.severity,
        created_at=now,
        summary=summary[:1000],
        group_value=hit.group_value,
        event_ids=event_ids[:MAX_ALERT_EVENT_IDS],
        **_sigma_fields(rule),
    )


# --- temporal correlations (Sigma `temporal`, `temporal_ordered`) --------------------------------


def _temporal(
    hit: Hit, spec: Temporal, state: GroupState, now: datetime, alerts: dict[str, Alert]
) -> bool:
    """Every part (in order, for `ordered`) within the window, on event time: each event that
    completes such a set raises one alert (id: rule, group, completing event). Parts counted for
    an alert never count again, so one set raises one alert whatever order events arrive in."""
    rule = hit.rule
    if not _add(state.entries, _entry(hit)):
        return False
    window_ms = spec.window_seconds * 1000
    oldest_kept = state.entries[-1].at_ms - window_ms - ALLOWED_LATENESS_MS
    state.entries = [e for e in state.entries if e.at_ms >= oldest_kept][-MAX_VALUE_ENTRIES:]
    for index, closing in enumerate(state.entries):
        if state.last_alert_ms is not None and closing.at_ms <= state.last_alert_ms:
            continue
        window = [
            e
            for e in state.entries[: index + 1]
            if e.at_ms >= closing.at_ms - window_ms
            and (state.last_alert_ms is None or e.at_ms > state.last_alert_ms)
        ]
        chosen = _ordered_parts(window, spec.parts) if spec.ordered else _all_parts(window, spec)
        if chosen is None:
            continue
        alert_id = alert_id_for(rule.id, hit.group_value or "", closing.dedupe_key)
        group = f" by {hit.group_value}" if hit.group_value else ""
        summary = (
            f"{spec.parts} correlated rules matched{group} within {spec.window_seconds} s"
            f"{' in order' if spec.ordered else ''}, last: {closing.summary or ''}"
        )
        event_ids = [entry.event_id for entry in chosen]
        alerts.setdefault(alert_id, _stateful_alert(rule, hit, alert_id, summary, event_ids, now))
        state.last_alert_ms = closing.at_ms
    return True


def _all_parts(window: list[WindowEntry], spec: Temporal) -> list[WindowEntry] | None:
    latest: dict[str, WindowEntry] = {}
    for entry in window:
        latest[entry.value or ""] = entry
    if len(latest) < spec.parts or window[-1].value not in latest:
        return None
    return sorted(latest.values(), key=lambda e: (e.at_ms, e.dedupe_key))


def _ordered_parts(window: list[WindowEntry], parts: int) -> list[WindowEntry] | None:
    """The window's last entry must be the last part; earlier parts found walking back in time."""
    if window[-1].value != str(parts - 1):
        return None
    chosen = [window[-1]]
    wanted = parts - 2
    for entry in reversed(window[:-1]):
        if wanted < 0:
            break
        if entry.value == str(wanted) and entry.at_ms <= chosen[-1].at_ms:
            chosen.append(entry)
            wanted -= 1
    return list(reversed(chosen)) if wanted < 0 else None


# --- notification --------------------------------------------------------------------------------


def webhook_payload(alert: Alert) -> dict[str, Any]:
    """Teams- and Slack-compatible: both show `text`; other receivers can read `alert`."""
    group = f" ({alert.group_value})" if alert.group_value else ""
    text = (
        f"[{alert.severity.upper()}] {alert.rule_name}{group}: {alert.summary} "
        f"— {len(alert.event_ids)} event(s), alert {alert.id}"
    )
    return {"text": text, "alert": alert.model_dump(mode="json")}
