"""The forwarder against a real local HTTP SIEM (ASGI under uvicorn on 127.0.0.1): batching, retries,
rejections to the DLQ, and the circuit breaker, on the embedded log and on Kafka."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import orjson
import pytest
from prometheus_client import REGISTRY

from aoc_common import topics
from aoc_common.circuit_breaker import CircuitBreaker
from aoc_common.events import CanonicalEvent
from aoc_common.http_retry import RetryPolicy
from aoc_siem_forwarder.runtime import SiemForwarder
from aoc_siem_forwarder.transports import HttpTransport
from tests.utils.consumers import running
from tests.utils.siem import Engine, caught_up, ours, siem_dead_letters
from tests.utils.siem_receivers import HttpSiem, Reply, serving
from tests.utils.topic_io import publish_events
from tests.utils.waiting import wait_for

SECRET = b"webhook-signing-secret"
HEC_TOKEN = "11111111-2222-3333-4444-555555555555"
FAST = RetryPolicy(max_attempts=4, base_delay_s=0.02, max_delay_s=0.1, max_retry_after_s=5)


def forwarder(
    engine: Engine,
    url: str,
    *,
    siem_format: str = "json",
    policy: RetryPolicy = FAST,
    breaker: CircuitBreaker | None = None,
    timeout_s: float = 5.0,
    hec_token: str | None = None,
    batch_max_events: int = 50,
) -> SiemForwarder:
    transport = HttpTransport(
        siem_format,  # type: ignore[arg-type]
        url,
        timeout_s=timeout_s,
        hmac_secret=SECRET if siem_format == "json" else None,
        hec_token=hec_token,
    )
    return SiemForwarder(
        engine.message_log,
        transport,
        breaker=breaker or CircuitBreaker(5, 30),
        policy=policy,
        batch_max_events=batch_max_events,
        linger_s=0.05,
        group=engine.group,
    )


def ids_of(events: Sequence[CanonicalEvent]) -> list[str]:
    return [e.id for e in events]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.every_engine_kind
async def test_every_fixture_event_reaches_the_webhook_exactly_once_signed_and_in_batches(
    engine: Engine, events: list[CanonicalEvent]
) -> None:
    siem = HttpSiem(hmac_secret=SECRET)
    forwarded_before = metric("aoc_siem_events_forwarded_total", format="json")
    async with serving(siem) as url:
        await publish_events(engine.message_log, events)
        async with running(forwarder(engine, f"{url}/ingest")):
            await wait_for(lambda: len(ours(siem.accepted, events)), lambda n: n >= len(events))
            lag = await caught_up(engine)

    assert sorted(ours(siem.accepted, events)) == sorted(ids_of(events))  # each once, none missing
    assert lag == 0  # committed after the SIEM acknowledged
    if engine.name == "embedded":  # the gauge, reported once more after the last commit
        assert metric("aoc_consumer_lag_messages", group=engine.group, topic=topics.EVENTS) == 0
    assert all(r.status == 200 for r in siem.requests)  # every signature verified
    assert len(siem.requests) < len(events) / 10  # batched, not one request per event
    assert max(r.events for r in siem.requests) <= 50
    received = {e["id"]: e for e in siem.accepted_events}
    for event in events:  # the canonical event as published, nothing lost on the way
        assert CanonicalEvent.model_validate(received[event.id]) == event
    forwarded = metric("aoc_siem_events_forwarded_total", format="json") - forwarded_before
    # The shared broker's aoc.events may hold other tests' events before ours: the metric counts
    # exactly what this receiver accepted, ours included.
    assert forwarded == len(siem.accepted) >= len(events)


@pytest.mark.every_engine_kind
async def test_a_record_the_siem_rejects_goes_to_the_dlq_with_its_answer_and_the_rest_is_forwarded(
    engine: Engine, events: list[CanonicalEvent]
) -> None:
    refused = {events[10].id, events[77].id}
    siem = HttpSiem(hmac_secret=SECRET, refuse_ids=set(refused))
    async with serving(siem) as url:
        await publish_events(engine.message_log, events)
        async with running(forwarder(engine, url)):
            await wait_for(lambda: len(ours(siem.accepted, events)), lambda n: n >= len(events) - 2)
            letters = await siem_dead_letters(engine.message_log, refused)
            await caught_up(engine)

    assert sorted(ours(siem.accepted, events)) == sorted(set(ids_of(events)) - refused)
    assert len(letters) == 2
    for letter in letters:
        original = orjson.loads(base64.b64decode(letter["original_base64"]))
        assert original["id"] in refused
        assert letter["source_topic"] == topics.EVENTS
        assert letter["reason"].startswith("SIEM rejected the event: HTTP 400:")
        assert f"event {original['id']} refused: operation not allowed" in letter["reason"]
    if engine.name == "embedded":  # the embedded DLQ is this test's alone: nothing else was refused
        everything = await siem_dead_letters(engine.message_log, set(ids_of(events)), timeout_s=2)
        assert len(everything) == 2


async def test_splunk_hec_gets_envelopes_with_the_token_and_its_invalid_event_number_is_used(
    engine: Engine, events: list[CanonicalEvent]
) -> None:
    refused = {events[3].id}
    siem = HttpSiem(siem_format="splunk_hec", hec_token=HEC_TOKEN, refuse_ids=set(refused))
    async with serving(siem) as url:
        await publish_events(engine.message_log, events)
        hec = forwarder(
            engine,
            f"{url}/services/collector/event",
            siem_format="splunk_hec",
            hec_token=HEC_TOKEN,
        )
        async with running(hec):
            await wait_for(lambda: len(ours(siem.accepted, events)), lambda n: n >= len(events) - 1)
            letters = await siem_dead_letters(engine.message_log, refused)

    assert sorted(ours(siem.accepted, events)) == sorted(set(ids_of(events)) - refused)
    assert len(letters) == 1
    assert '"text":"Invalid data format","code":6' in letters[0]["reason"]
    # HEC named the bad event, so it was tried alone at once: two 400s (the batch, then the event),
    # where halving a batch of 50 would have taken about six.
    assert [r.status for r in siem.requests].count(400) == 2


async def test_a_wrong_hec_token_holds_every_event_back_instead_of_dead_lettering_it(
    engine: Engine, events: list[CanonicalEvent]
) -> None:
    siem = HttpSiem(siem_format="splunk_hec", hec_token=HEC_TOKEN)
    breaker = CircuitBreaker(1, 60)
    async with serving(siem) as url:
        await publish_events(engine.message_log, events)
        hec = forwarder(
            engine, url, siem_format="splunk_hec", hec_token="wrong-token", breaker=breaker
        )
        async with running(hec):
            await wait_for(lambda: breaker.state, lambda state: state == "open")

    assert [r.status for r in siem.requests] == [403]
    assert siem.accepted == []
    assert await engine.message_log.lag(engine.group, topics.EVENTS) == len(events)
    assert await siem_dead_letters(engine.message_log, set(ids_of(events)), timeout_s=1) == []


async def test_5xx_and_429_are_retried_honouring_retry_after_without_duplicates(
    engine: Engine, events: list[CanonicalEvent]
) -> None:
    siem = HttpSiem(hmac_secret=SECRET)
    siem.script.extend([Reply(500), Reply(429, retry_after="1"), Reply(502)])
    retries_before = metric("aoc_siem_retries_total", format="json", reason="http")
    async with serving(siem) as url:
        await publish_events(engine.message_log, events)
        async with running(forwarder(engine, url)):
            await wait_for(lambda: len(ours(siem.accepted, events)), lambda n: n >= len(events))

    assert sorted(ours(siem.accepted, events)) == sorted(ids_of(events))
    statuses = [r.status for r in siem.requests]
    assert statuses[:4] == [500, 429, 502, 200]
    assert siem.requests[2].at - siem.requests[1].at >= 0.95  # waited for Retry-After: 1
    assert metric("aoc_siem_retries_total", format="json", reason="http") - retries_before == 3


async def test_a_slow_siem_times_out_and_the_batch_is_sent_again(
    engine: Engine, events: list[CanonicalEvent]
) -> None:
    siem = HttpSiem(hmac_secret=SECRET)
    siem.script.append(Reply(delay_s=2.0, then_accept=True))
    async with serving(siem) as url:
        await publish_events(engine.message_log, events)
        async with running(forwarder(engine, url, timeout_s=0.5)):
            await wait_for(
                lambda: set(ours(siem.accepted, events)), lambda seen: seen >= set(ids_of(events))
            )
            await caught_up(engine)

    assert set(ours(siem.accepted, events)) == set(ids_of(events))  # at least once, nothing missing
    slow, resent = siem.requests[0], siem.requests[1]
    assert resent.at - slow.at >= 0.45  # the client gave up after its 0.5 s timeout…
    assert resent.ids == slow.ids  # …and sent the same batch again


async def test_the_breaker_stops_calling_a_down_siem_for_the_cool_down_and_then_resumes(
    engine: Engine, events: list[CanonicalEvent], capsys: pytest.CaptureFixture[str]
) -> None:
    cooldown = 1.5
    breaker = CircuitBreaker(2, cooldown)
    siem = HttpSiem(hmac_secret=SECRET, down=True)
    async with serving(siem) as url:
        await publish_events(engine.message_log, events)
        one_try = RetryPolicy(max_attempts=1)
        hook = f"{url}/hook/T0K3N"
        async with running(forwarder(engine, hook, policy=one_try, breaker=breaker)):
            await wait_for(lambda: breaker.state, lambda state: state == "open")
            assert len(siem.requests) == 2
            assert metric("aoc_siem_circuit_open", format="json") == 1
            await wait_for(lambda: len(siem.requests), lambda n: n >= 3)  # half-open trial fails
            siem.down = False
            await wait_for(lambda: len(ours(siem.accepted, events)), lambda n: n >= len(events))
            await caught_up(engine)

    at = [r.at for r in siem.requests]
    assert [r.status for r in siem.requests[:3]] == [503, 503, 503]
    logged = capsys.readouterr()
    assert "siem circuit opened" in logged.out + logged.err
    assert "T0K3N" not in logged.out + logged.err  # a token in the webhook's path stays out of logs
    assert at[2] - at[1] >= cooldown - 0.05  # silence while open
    assert at[3] - at[2] >= cooldown - 0.05  # reopened by the failed trial
    assert sorted(ours(siem.accepted, events)) == sorted(
        ids_of(events)
    )  # resumed from the committed offset
    assert breaker.state == "closed"
    assert metric("aoc_siem_circuit_open", format="json") == 0
