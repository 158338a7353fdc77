"""Getting one batch acknowledged by a SIEM without flooding it: backoff, the breaker, the give-up point.

A SIEM that answers after SIEM_TIMEOUT_SECONDS has usually received the batch: sending it again at once
floods it with copies. So every failed attempt — a timeout, a 5xx, a 429, a refused connection — counts
on the circuit breaker, and the next attempt waits longer: about 1 s, 2 s, 4 s … up to 60 s, each wait
drawn between the previous ceiling and the next (core.growing_backoff_s), so the waits spread out
between forwarders yet never shrink. A `Retry-After` is honoured when it asks for longer. The count of
failures in a row outlives the batch: a batch given up after SIEM_MAX_ATTEMPTS is read again after the
next, longer wait (`RetryLater`), and only an acknowledged delivery resets it. Every copy carries the
same idempotency keys (see core.py), so a receiver can drop the repeats it does get.

This is the forwarder's own delivery code, independent of how batches are consumed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence

from aoc_common.circuit_breaker import CircuitBreaker
from aoc_common.http_retry import RetryPolicy
from aoc_common.logging import get_logger
from aoc_common.message_log.consumer import RetryLater
from aoc_common.metrics import SIEM_CIRCUIT_OPEN, SIEM_RETRIES
from aoc_siem_forwarder.core import ForwardedEvent, growing_backoff_s
from aoc_siem_forwarder.transports import Answer, SiemUnavailable, Transport

# The SIEM's defaults: waits of 1, 2, 4 … 60 s between attempts at one batch.
SIEM_RETRY_POLICY = RetryPolicy(max_attempts=5, base_delay_s=1.0, max_delay_s=60.0)

Sleep = Callable[[float], Awaitable[None]]
log = get_logger(__name__)


class Delivery:
    """Sends batches through one transport; remembers how many attempts in a row have failed."""

    def __init__(
        self,
        transport: Transport,
        breaker: CircuitBreaker,
        policy: RetryPolicy = SIEM_RETRY_POLICY,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.transport = transport
        self.breaker = breaker
        self.policy = policy
        self.failures_in_a_row = 0
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._format = transport.siem_format

    def next_wait_s(self, retry_after_s: float | None = None) -> float:
        """How long to wait after the failures so far (a server's Retry-After wins when longer)."""
        wait = growing_backoff_s(
            self.failures_in_a_row,
            base_s=self.policy.base_delay_s,
            cap_s=self.policy.max_delay_s,
            rng=self._rng,
        )
        if retry_after_s is not None:
            wait = max(wait, min(retry_after_s, self.policy.max_retry_after_s))
        return wait

    async def send(self, events: Sequence[ForwardedEvent]) -> Answer:
        """The SIEM's final answer for `events`; `RetryLater` when this batch is to be read again later.

        Raises RetryLater when the breaker is open (wait out the cool-down) or after
        `policy.max_attempts` failed attempts (wait the next backoff).
        """
        for attempt in range(1, self.policy.max_attempts + 1):
            wait = self.breaker.retry_in_s()
            if wait > 0:
                raise RetryLater(wait, "SIEM circuit breaker is open")
            try:
                answer = await self.transport.send(events)
            except SiemUnavailable as error:
                self.failures_in_a_row += 1
                SIEM_RETRIES.labels(self._format, error.kind).inc()
                if self.breaker.record_failure():
                    SIEM_CIRCUIT_OPEN.labels(self._format).set(1)
                    log.warning(
                        "siem circuit opened",
                        failures=self.breaker.consecutive_failures,
                        cooldown_s=self.breaker.cooldown_s,
                        error=str(error),
                    )
                    raise RetryLater(self.breaker.cooldown_s, str(error)) from error
                wait = self.next_wait_s(error.retry_after_s)
                log.warning(
                    "siem delivery failed",
                    attempt=attempt,
                    failures_in_a_row=self.failures_in_a_row,
                    problem=str(error),
                    wait_s=round(wait, 2),
                )
                if attempt == self.policy.max_attempts:
                    raise RetryLater(wait, f"gave up after {attempt} attempts: {error}") from error
                await self._sleep(wait)
                continue
            if self.breaker.state != "closed":
                log.info("siem reachable again; circuit closed")
            self.failures_in_a_row = 0
            self.breaker.record_success()
            SIEM_CIRCUIT_OPEN.labels(self._format).set(0)
            return answer
        raise AssertionError("unreachable: the last attempt returns or raises")
