"""A SIEM that acknowledges later than SIEM_TIMEOUT_SECONDS is not flooded with copies of a batch.

Such a SIEM usually did ingest the batch; it just answered late. The forwarder sends the batch again
only after growing waits, every late answer counts on the circuit breaker, and every copy carries the
same idempotency keys, so the receiver can keep each event once.
"""

from __future__ import annotations

import asyncio
import itertools

from prometheus_client import REGISTRY

from aoc_common.circuit_breaker import CircuitBreaker
from aoc_common.events import CanonicalEvent
from aoc_common.http_retry import RetryPolicy
from aoc_siem_forwarder.runtime import SiemForwarder
from aoc_siem_forwarder.transports import HttpTransport
from tests.utils.consumers import running
from tests.utils.siem import Engine, caught_up, ours
from tests.utils.siem_receivers import HttpSiem, Reply, SeenRequest, serving
from tests.utils.topic_io import publish_events
from tests.utils.waiting import wait_for

TIMEOUT_S = 0.3
LATE_S = 0.9  # the receiver ingests the batch, then answers this late


def late_forwarder(
    engine: Engine, url: str, *, policy: RetryPolicy, breaker: CircuitBreaker
) -> SiemForwarder:
    transport = HttpTransport("json", url, timeout_s=TIMEOUT_S)
    return SiemForwarder(
        engine.message_log,
        transport,
        breaker=breaker,
        policy=policy,
        batch_max_events=100,
        linger_s=0.05,
        group=engine.group,
    )


def intervals(requests: list[SeenRequest]) -> list[float]:
    return [later.at - earlier.at for earlier, later in itertools.pairwise(requests)]


def distinct_by_key(requests: list[SeenRequest]) -> set[str]:
    """What a receiver that drops repeats keeps: one entry per event key."""
    return {key for request in requests for key in request.event_keys}


async def test_a_batch_acknowledged_too_late_is_resent_a_bounded_number_of_times_at_growing_intervals(
    engine: Engine, events: list[CanonicalEvent]
) -> None:
    batch = events[:30]
    siem = HttpSiem()
    siem.script.extend([Reply(delay_s=LATE_S, then_accept=True)] * 3)  # then it answers in time
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.2, max_delay_s=1.6)
    async with serving(siem) as url:
        await publish_events(engine.message_log, batch)
        async with running(
            late_forwarder(engine, url, policy=policy, breaker=CircuitBreaker(10, 30))
        ):
            await wait_for(lambda: [r.status for r in siem.requests], lambda s: 200 in s)
            await caught_up(engine)

    requests = siem.requests
    assert len(requests) == 4  # three late answers, then one in time: nothing more
    assert all(r.ids == requests[0].ids for r in requests)
    gaps = intervals(requests)
    assert gaps[0] >= TIMEOUT_S + 0.1  # the timeout, then at least the first wait (0.1–0.2 s)
    assert all(later >= earlier - 0.02 for earlier, later in itertools.pairwise(gaps)), gaps
    assert gaps[-1] >= TIMEOUT_S + 0.4  # the third wait is at least 0.4 s (after a rejoin)
    # The receiver ingested the batch four times; by its keys it keeps each event once.
    assert len(ours(siem.accepted, batch)) == 4 * len(batch)
    assert len({r.key for r in requests}) == 1 and requests[0].key
    assert len(distinct_by_key(requests)) == len(batch)


async def test_a_siem_that_always_answers_too_late_opens_the_breaker_after_a_few_copies(
    engine: Engine, events: list[CanonicalEvent]
) -> None:
    batch = events[:30]
    siem = HttpSiem()
    siem.script.extend([Reply(delay_s=LATE_S, then_accept=True)] * 50)
    breaker = CircuitBreaker(4, 30)
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.1, max_delay_s=0.4)
    async with serving(siem) as url:
        await publish_events(engine.message_log, batch)
        async with running(late_forwarder(engine, url, policy=policy, breaker=breaker)):
            await wait_for(lambda: breaker.state, lambda state: state == "open")
            sent_when_opened = len(siem.requests)
            await asyncio.sleep(2.0)  # what a SIEM answering late used to get: a copy every ~2 s
            sent_after = len(siem.requests)

    assert sent_when_opened == 4  # each timeout counted: four late answers open the breaker
    assert sent_after == 4  # …and while it is open nothing is sent
    gaps = intervals(siem.requests)
    assert all(later >= earlier - 0.02 for earlier, later in itertools.pairwise(gaps)), gaps
    assert REGISTRY.get_sample_value("aoc_siem_circuit_open", {"format": "json"}) == 1
    retries = REGISTRY.get_sample_value(
        "aoc_siem_retries_total", {"format": "json", "reason": "timeout"}
    )
    assert retries is not None and retries >= 4
    assert len(distinct_by_key(siem.requests)) == len(batch)
