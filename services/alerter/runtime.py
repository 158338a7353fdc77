"""The alerter's shell: `aoc.events` in (consumer group aoc-alerter), alerts out, commit after.

Per batch: decode (bad records → `aoc.dlq`), read the rules, match (core), read the window state the
hits need, raise alerts (core), then — before the offsets are committed — publish the alerts not yet
stored to `aoc.alerts`, notify the webhook, insert them into the store (insert-if-absent by id) and
write the window state. A crash anywhere before the commit re-reads the batch; alert ids are stable,
so the store never holds an alert twice and an acknowledged alert is never reopened (publishing and
the webhook are at-least-once). The alerter only reads and writes the store's rules, alerts and its
own state, never events, so it can lag, fail or be replayed without touching the store sink.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from aoc_alerter.core import STAGE, Evaluation, GroupState, find_hits, raise_alerts
from aoc_alerter.default_rules import default_rules
from aoc_alerter.notify import WebhookNotifier
from aoc_alerter.sigma_loading import load_sigma_rules_into
from aoc_common import topics
from aoc_common.codec import encode
from aoc_common.consumed_events import ConsumedEvent
from aoc_common.dead_letter import DeadLetter
from aoc_common.event_store.base import AlertStore, RuleStore, StateStore, StoreError
from aoc_common.events import utc_now
from aoc_common.logging import get_logger
from aoc_common.message_log.base import Message, MessageLog
from aoc_common.message_log.consumer import EventConsumer, backoff_delay
from aoc_common.metrics import ALERTS_RAISED, RULE_REGEX_TIMEOUTS

SEEDED_STATE_KEY = "alerter:seeded-default-rules"
log = get_logger(__name__)


class AlerterStore(RuleStore, AlertStore, StateStore, Protocol):
    """What the alerter needs of the store: rules, alerts and its window state, never events."""


async def seed_default_rules(store: AlerterStore) -> list[str]:
    """Store each shipped default rule once; returns the ids added now.

    The ids seeded so far are remembered, so a default rule an operator deleted stays deleted and one
    they edited keeps their edits; a default rule added in a later version is still seeded.
    """
    seeded_state = await store.get_state(SEEDED_STATE_KEY) or {}
    seeded = set(seeded_state.get("ids", []))
    added: list[str] = []
    for rule in default_rules():
        if rule.id in seeded:
            continue
        if await store.get_rule(rule.id) is None:
            await store.put_rule(rule)
            added.append(rule.id)
        seeded.add(rule.id)
    await store.put_state(SEEDED_STATE_KEY, {"ids": sorted(seeded)})
    return added


class Alerter(EventConsumer):
    service = STAGE
    reader = "alerter"

    def __init__(
        self,
        message_log: MessageLog,
        store: AlerterStore,
        *,
        notifier: WebhookNotifier | None = None,
        clock: Callable[[], datetime] = utc_now,
        events_topic: str = topics.EVENTS,
        group: str = topics.ALERTER_GROUP,
        sigma_paths: Sequence[Path] = (),
        sigma_placeholders: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """`events_topic` and `group` name what to read as whom: the normalized topic as aoc-alerter,
        unless an operator runs a second alerter over another copy of the stream. The notifier, when
        given, is the alerter's own: it is closed when the alerter stops. `sigma_paths`
        (SIGMA_RULES_PATH) are loaded into the rule store at start; `sigma_placeholders`
        (SIGMA_PLACEHOLDERS) give Sigma placeholders such as %internal_domains% their values."""
        super().__init__(message_log, topics=[events_topic], group=group)
        self.events_topic = events_topic
        self.sigma_paths = list(sigma_paths)
        self.sigma_placeholders = dict(sigma_placeholders or {})
        self._refusals_logged: set[str] = set()
        self.store = store
        self.notifier = notifier
        self.clock = clock

    async def handle_events(self, consumed: Sequence[ConsumedEvent]) -> list[DeadLetter]:
        rules = await self.store.list_rules()
        evaluation = Evaluation()
        hits = find_hits(
            rules, [c.event for c in consumed], evaluation, placeholders=self.sigma_placeholders
        )
        for rule_id, reason in evaluation.refused.items():
            if rule_id not in self._refusals_logged:
                self._refusals_logged.add(rule_id)
                log.warning("sigma rule cannot run: skipped", rule_id=rule_id, reason=reason)
        if evaluation.regex_timeouts:
            RULE_REGEX_TIMEOUTS.inc(evaluation.regex_timeouts)
            log.warning("rule regular expressions timed out", count=evaluation.regex_timeouts)
        if not hits:
            return []
        states: dict[str, GroupState] = {}
        for key in dict.fromkeys(hit.state_key for hit in hits if hit.needs_state):
            stored = await self.store.get_state(key)
            if stored is not None:
                states[key] = GroupState.model_validate(stored)
        alerts, changed = raise_alerts(hits, states, self.clock())
        if alerts:
            known = await self.store.existing_alert_ids([alert.id for alert in alerts])
            fresh = [alert for alert in alerts if alert.id not in known]
            if fresh:
                await self.message_log.publish(
                    topics.ALERTS, [Message(alert.id.encode(), encode(alert)) for alert in fresh]
                )
                if self.notifier is not None:
                    await self.notifier.notify(fresh)
            inserted = set(await self.store.insert_alerts(alerts))
            for alert in alerts:
                if alert.id in inserted:
                    ALERTS_RAISED.labels(alert.severity).inc()
                    log.info("alert", alert_id=alert.id, rule_id=alert.rule_id)
        for key, state in changed.items():
            await self.store.put_state(key, state.model_dump())
        return []

    async def on_start(self, stop: asyncio.Event) -> None:
        """Seed the default rules and load SIGMA_RULES_PATH, waiting (with backoff) for a store
        that is not up yet."""
        attempt = 0
        while not stop.is_set():
            try:
                added = await seed_default_rules(self.store)
                if self.sigma_paths:
                    await load_sigma_rules_into(
                        self.store, self.sigma_paths, self.sigma_placeholders
                    )
            except StoreError as error:
                attempt += 1
                delay = backoff_delay(attempt)
                log.warning("cannot seed default rules yet", error=str(error), retry_in_s=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                continue
            if added:
                log.info("default rules seeded", rules=added)
            return

    async def on_stop(self) -> None:
        if self.notifier is not None:
            await self.notifier.aclose()
