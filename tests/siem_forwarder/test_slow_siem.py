"""A SIEM that acknowledges later than SIEM_TIMEOUT_SECONDS is not flooded with copies of a batch.

Such a SIEM usually did ingest the batch; it just answered late. The forwarder sends the batch again
only after growing waits, every late answer counts on the circuit breaker, and every copy carries the
same idempotency keys, so the receiver can keep each event once.

Timing is asserted without depending on the machine's speed: the waits are the ones the forwarder
asked for (recorded, so "growing" is exact), and each copy left no sooner than the timeout plus that
wait after the one before (a lower bound that only an early copy breaks, measured on the forwarder's
side, where a loaded event loop can only make gaps longer).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence

from prometheus_client import REGISTRY

from aoc_common.circuit_breaker import CircuitBreaker
from aoc_common.events import CanonicalEvent
from aoc_common.http_retry import RetryPolicy
from aoc_siem_forwarder.core import ForwardedEvent
from aoc_siem_forwarder.delivery import Delivery
from aoc_siem_forwarder.runtime import SiemForwarder
from aoc_siem_forwarder.transports import Answer, HttpTransport
from tests.utils.consumers import running
from tests.utils.siem import Engine, caught_up, ours
from tests.utils.siem_receivers import HttpSiem, Reply, SeenRequest, serving
from tests.utils.topic_io import publish_events
from tests.utils.waiting import wait_for

TIMEOUT_S = 0.3
LATE_S = 0.9  # the receiver ingests the batch, then answers this late


class TimedTransport(HttpTransport):
    """The forwarder's HTTP transport, noting when each attempt left (by the forwarder's clock)."""

    def __init__(self, url: str) -> None:
        super().__init__("json", url, timeout_s=TIMEOUT_S)
        self.sent_at: list[float] = []

    async def send(self, events: Sequence[ForwardedEvent]) -> Answer:
        self.sent_at.append(time.monotonic())
        return await super().send(events)


class RecordedDelivery(Delivery):
    """The forwarder's delivery, noting every wait it asks for before the next attempt."""

    def __init__(
        self, transport: HttpTransport, breaker: CircuitBreaker, policy: RetryPolicy
    ) -> None:
        super().__init__(transport, breaker, policy)
        self.asked: list[float] = []

    def next_wait_s(self, retry_after_s: float | None = None) -> float:
        wait = super().next_wait_s(retry_after_s)
        self.asked.append(wait)
        return wait


def late_forwarder(
    engine: Engine, url: str, *, policy: RetryPolicy, breaker: CircuitBreaker
) -> tuple[SiemForwarder, TimedTransport, list[float]]:
    """The forwarder, its transport (when each attempt left) and the waits it asked for."""
    transport = TimedTransport(url)
    forwarder = SiemForwarder(
        engine.message_log,
        transport,
        breaker=breaker,
        policy=policy,
        batch_max_events=100,
        linger_s=0.05,
        group=engine.group,
    )
    delivery = RecordedDelivery(transport, breaker, policy)
    forwarder.delivery = delivery
    return forwarder, transport, delivery.asked


def gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def sent_early(sent_at: list[float], asked: list[float]) -> list[tuple[float, float]]:
    """(gap, least it may be) for each copy sent sooner than the timeout + the wait asked for after
    the copy before it (1 ms of slack for the clock's rounding); [] when every copy waited its turn."""
    return [
        (gap, TIMEOUT_S + wait)
        for gap, wait in zip(gaps(sent_at), asked, strict=False)
        if gap < TIMEOUT_S + wait - 0.001
    ]


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
        forwarder, transport, asked = late_forwarder(
            engine, url, policy=policy, breaker=CircuitBreaker(10, 30)
        )
        async with running(forwarder):
            await wait_for(lambda: [r.status for r in siem.requests], lambda s: 200 in s)
            await caught_up(engine)

    requests = siem.requests
    assert len(requests) == 4  # three late answers, then one in time: nothing more
    assert len(transport.sent_at) == 4
    assert all(r.ids == requests[0].ids for r in requests)
    # Growing waits: 0.1–0.2 s, 0.2–0.4 s, then (the batch given up, read again after a rejoin)
    # 0.4–0.8 s, each at least as long as the one before.
    assert len(asked) == 3 and asked == sorted(asked), asked
    for wait, (least, most) in zip(asked, [(0.1, 0.2), (0.2, 0.4), (0.4, 0.8)], strict=True):
        assert least <= wait <= most, asked
    assert sent_early(transport.sent_at, asked) == []  # no copy before its time
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
        forwarder, transport, asked = late_forwarder(engine, url, policy=policy, breaker=breaker)
        async with running(forwarder):
            await wait_for(lambda: breaker.state, lambda state: state == "open")
            sent_when_opened = len(siem.requests)
            await asyncio.sleep(2.0)  # what a SIEM answering late used to get: a copy every ~2 s
            sent_after = len(siem.requests)

    assert sent_when_opened == 4  # each timeout counted: four late answers open the breaker
    assert sent_after == 4  # …and while it is open nothing is sent
    assert len(asked) == 3 and asked == sorted(asked), asked  # the waits between them grew…
    assert sent_early(transport.sent_at, asked) == []  # …and were waited out
    assert REGISTRY.get_sample_value("aoc_siem_circuit_open", {"format": "json"}) == 1
    retries = REGISTRY.get_sample_value(
        "aoc_siem_retries_total", {"format": "json", "reason": "timeout"}
    )
    assert retries is not None and retries >= 4
    assert len(distinct_by_key(siem.requests)) == len(batch)
