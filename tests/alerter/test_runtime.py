"""The alerter as a consumer of aoc.events, on the embedded engines and on Kafka + MongoDB: alerts in
the store and on aoc.alerts, window state across a restart, no duplicates on replay, dead letters,
and webhook notifications to a real local receiver."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from aoc_alerter.notify import WebhookNotifier
from aoc_alerter.runtime import Alerter, seed_default_rules
from aoc_common import topics
from aoc_common.engines import Engines
from aoc_common.event_store.base import EventStore
from aoc_common.http_retry import RetryPolicy
from aoc_common.message_log.base import Message, MessageLog
from aoc_common.rules import Alert, AlertQuery
from tests.utils.alerts import a_burst
from tests.utils.consumers import caught_up as group_caught_up
from tests.utils.consumers import running
from tests.utils.expected import DEFAULT_RULE_ALERTS, DEFAULT_RULE_HITS
from tests.utils.records import fixture_events
from tests.utils.topic_io import publish_events, read_topic
from tests.utils.waiting import wait_for
from tests.utils.webhook_receiver import running_receiver

FAST_RETRIES = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05)


async def all_alerts(store: EventStore) -> list[Alert]:
    return (await store.query_alerts(AlertQuery(page_size=500))).items


async def caught_up(
    message_log: MessageLog, topic: str = topics.EVENTS, group: str = topics.ALERTER_GROUP
) -> None:
    """Until the alerter's group has committed everything on its topic."""
    await group_caught_up(message_log, group, topic)


@dataclass(frozen=True)
class AlerterUnderTest:
    """The engines, and what the alerter reads as whom on them."""

    engines: Engines
    events_topic: str = topics.EVENTS
    group: str = topics.ALERTER_GROUP

    def alerter(self) -> Alerter:
        return Alerter(
            self.engines.message_log,
            self.engines.store,
            events_topic=self.events_topic,
            group=self.group,
        )


@pytest.fixture
async def under_test(engines: Engines) -> AlerterUnderTest:
    if engines.message_log.engine == "embedded":
        return AlerterUnderTest(engines)
    # The session's broker is shared with other tests (the pipeline test counts what its store
    # sink reads from aoc.events): this test reads its own copy of the stream as its own group,
    # and counts only its own alerts (by id) on aoc.alerts, in its own database.
    suffix = uuid.uuid4().hex[:12]
    await engines.message_log.ensure_topics([f"{topics.EVENTS}.test-{suffix}"])
    return AlerterUnderTest(engines, f"{topics.EVENTS}.test-{suffix}", f"test-alerter-{suffix}")


@pytest.mark.every_engine_kind
async def test_fixture_alerts_are_stored_and_published_once_across_a_restart_and_a_replay(
    under_test: AlerterUnderTest, fixtures_dir: Path
) -> None:
    message_log, store = under_test.engines.message_log, under_test.engines.store
    topic, group = under_test.events_topic, under_test.group
    alerts_start = sum((await message_log.end_offsets(topics.ALERTS)).values())
    events = fixture_events(fixtures_dir)
    deletion = next(e for e in events if e.dedupe_key == "directory:Directory_353C631C_0013")
    burst = [
        event.model_copy(update={"actor_display": "mallory@contoso.com"})
        for event in a_burst(deletion, 5, every=timedelta(minutes=1), prefix="burst")
    ]

    # Run 1: every fixture event and three deletions of the burst.
    await publish_events(message_log, [*events, *burst[:3]], topic)
    async with running(under_test.alerter()):
        stored = await wait_for(lambda: all_alerts(store), lambda a: len(a) >= DEFAULT_RULE_ALERTS)
        await caught_up(message_log, topic, group)
    assert sorted(a.rule_id for a in stored) == sorted(
        rule for rule, keys in DEFAULT_RULE_HITS.items() for _ in keys
    )

    # Run 2, a new alerter process: the window kept in the store counts the first three deletions.
    await publish_events(message_log, burst[3:], topic)
    async with running(under_test.alerter()):
        stored = await wait_for(lambda: all_alerts(store), lambda a: len(a) > DEFAULT_RULE_ALERTS)
        await caught_up(message_log, topic, group)
    mass = [a for a in stored if a.rule_id == "default-mass-user-deletion"]
    assert len(stored) == DEFAULT_RULE_ALERTS + 1 and len(mass) == 1
    assert mass[0].event_ids == [event.id for event in burst]
    acknowledged = await store.acknowledge_alert(
        mass[0].id, "analyst@contoso.com", mass[0].created_at
    )

    # Replay the whole topic: nothing new, nothing reopened.
    await message_log.reset_group(group, topic, to_offset=0)
    async with running(under_test.alerter()):
        await caught_up(message_log, topic, group)
    after_replay = await all_alerts(store)
    assert sorted(a.id for a in after_replay) == sorted(a.id for a in stored)
    assert await store.get_alert(mass[0].id) == acknowledged

    ids = {alert.id for alert in stored}
    on_topic = await read_topic(message_log, topics.ALERTS, alerts_start + len(stored))
    published = [r for r in on_topic if r.key and r.key.decode() in ids]
    assert sorted(r.key.decode() for r in published if r.key) == sorted(ids)  # each exactly once
    assert sorted(orjson.loads(r.value)["id"] for r in published) == sorted(ids)


async def test_records_that_are_not_canonical_events_are_dead_lettered_and_the_rest_evaluated(
    engines: Engines, fixtures_dir: Path
) -> None:
    message_log, store = engines.message_log, engines.store
    forwarding = [
        e
        for e in fixture_events(fixtures_dir)
        if e.dedupe_key in DEFAULT_RULE_HITS["default-mailbox-forwarding-external"]
    ]
    await message_log.publish(
        topics.EVENTS,
        [Message(b"broken", b"{not json"), Message(b"old", b'{"schema_version": 1}')],
    )
    await publish_events(message_log, forwarding)
    async with running(Alerter(message_log, store)):
        await caught_up(message_log)
    dead = await read_topic(message_log, topics.DLQ, 2)
    reasons = [orjson.loads(r.value) for r in dead]
    assert [(d["stage"], d["key"]) for d in reasons] == [
        ("alerter", "broken"),
        ("alerter", "old"),
    ]
    assert all(d["reason"].startswith("not a canonical event") for d in reasons)
    assert len(await all_alerts(store)) == len(forwarding)


async def test_new_alerts_reach_the_webhook_once_each_through_server_errors_and_throttling(
    engines: Engines, fixtures_dir: Path
) -> None:
    message_log, store = engines.message_log, engines.store
    wanted = DEFAULT_RULE_HITS["default-site-collection-admin-added"]
    events = [e for e in fixture_events(fixtures_dir) if e.dedupe_key in wanted]
    async with running_receiver() as receiver:
        receiver.fail_next(500, 503)
        receiver.fail_next(429, retry_after="0")
        notifier = WebhookNotifier(receiver.url, policy=FAST_RETRIES)
        await publish_events(message_log, [*events, *events])  # each event read twice
        async with running(Alerter(message_log, store, notifier=notifier)):
            await caught_up(message_log)
        await notifier.aclose()

    assert receiver.attempts == len(events) + 3
    texts = sorted(body["text"] for body in receiver.received)
    assert len(texts) == len(events)
    assert all(text.startswith("[MEDIUM] Site collection admin added") for text in texts)
    assert {body["alert"]["event_ids"][0] for body in receiver.received} == {e.id for e in events}


async def test_a_webhook_that_keeps_failing_does_not_stop_alerts(
    engines: Engines, fixtures_dir: Path
) -> None:
    message_log, store = engines.message_log, engines.store
    wanted = DEFAULT_RULE_HITS["default-guest-added-to-team"]
    events = [e for e in fixture_events(fixtures_dir) if e.dedupe_key in wanted]
    async with running_receiver() as receiver:
        receiver.fail_next(*[502] * 100)
        notifier = WebhookNotifier(receiver.url, policy=FAST_RETRIES)
        await publish_events(message_log, events)
        async with running(Alerter(message_log, store, notifier=notifier)):
            await caught_up(message_log)
        await notifier.aclose()
    assert receiver.attempts == len(events) * FAST_RETRIES.max_attempts
    assert receiver.received == []
    assert len(await all_alerts(store)) == len(events)


async def test_default_rules_are_seeded_once_and_a_deleted_default_stays_deleted(
    engines: Engines,
) -> None:
    store = engines.store
    first = await seed_default_rules(store)
    assert len(first) == len(DEFAULT_RULE_HITS)
    await store.delete_rule("default-mass-user-deletion")

    assert await seed_default_rules(store) == []
    assert "default-mass-user-deletion" not in {r.id for r in await store.list_rules()}
