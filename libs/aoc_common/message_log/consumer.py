"""The imperative shell every consuming service shares: fetch a batch, hand it to the service, commit.

Offsets are committed only after the handler returned, so a crash or a failing dependency (the store is
down, the SIEM answers 503) means the batch is read again: at-least-once, never lost. When the handler
raises, the member leaves the group and rejoins after a backoff, which rewinds it to the committed offset.
A handler must therefore turn bad *records* into dead letters itself and raise only for failures worth
retrying; a poison message must never stop a consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence

from aoc_common.logging import get_logger
from aoc_common.message_log.base import MessageLog, Record, Subscription
from aoc_common.metrics import BATCH_SECONDS, CONSUMER_LAG, MESSAGES_CONSUMED

BatchHandler = Callable[[Sequence[Record]], Awaitable[None]]

log = get_logger(__name__)


class RetryLater(Exception):
    """Raised by a handler that knows how long to wait, e.g. while a circuit breaker is open.

    The consumer does not count it as a failure: it leaves the group, waits exactly `delay_s`, and rejoins
    from the committed offset, so the batch in hand is read again then.
    """

    def __init__(self, delay_s: float, reason: str) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


def backoff_delay(attempt: int, *, base_s: float = 0.5, cap_s: float = 30.0) -> float:
    """Exponential backoff with full jitter (attempt 1 → up to base_s, doubling, capped)."""
    return random.uniform(0, min(cap_s, base_s * 2 ** (attempt - 1)))  # noqa: S311 - jitter, not crypto


async def run_consumer(
    message_log: MessageLog,
    *,
    service: str,
    topics: Sequence[str],
    group: str,
    handle: BatchHandler,
    stop: asyncio.Event,
    batch_size: int = 500,
    fetch_timeout_s: float = 0.5,
    linger_s: float = 0.0,
) -> None:
    """Consume `topics` as `group` until `stop` is set.

    With `linger_s` > 0 a batch is handed over when it holds `batch_size` records or when its first
    record has waited `linger_s`, whichever comes first (like Kafka's `linger.ms`): a consumer whose
    handler pays per call (an HTTP request to a SIEM) then makes fewer, fuller calls.
    """
    failures = 0
    while not stop.is_set():
        try:
            async with message_log.subscribe(topics, group) as subscription:
                while not stop.is_set():
                    records = await subscription.fetch(batch_size, fetch_timeout_s)
                    if not records:
                        continue
                    if linger_s > 0:
                        records += await _linger(subscription, batch_size - len(records), linger_s)
                    started = time.perf_counter()
                    await handle(records)
                    await subscription.commit(records)
                    BATCH_SECONDS.labels(service).observe(time.perf_counter() - started)
                    for record in records:
                        MESSAGES_CONSUMED.labels(service, record.topic).inc()
                    failures = 0
        except asyncio.CancelledError:
            raise
        except RetryLater as pause:
            log.warning(
                "consumer paused; rejoining from the committed offset",
                group=group,
                reason=str(pause),
                retry_in_s=round(pause.delay_s, 2),
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause.delay_s)
        except Exception as error:
            failures += 1
            delay = backoff_delay(failures)
            log.warning(
                "batch failed; rejoining from the committed offset",
                group=group,
                error=f"{type(error).__name__}: {error}",
                retry_in_s=round(delay, 2),
                failures=failures,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)


async def _linger(subscription: Subscription, room: int, linger_s: float) -> list[Record]:
    """More records for the batch in hand, until `room` is filled or `linger_s` has passed."""
    more: list[Record] = []
    deadline = time.monotonic() + linger_s
    while len(more) < room:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        more += await subscription.fetch(room - len(more), remaining)
    return more


async def record_lag(message_log: MessageLog, group: str, topics: Sequence[str]) -> int:
    """Update the lag gauge for `group` and return the total over `topics`."""
    total = 0
    for topic in topics:
        lag = await message_log.lag(group, topic)
        CONSUMER_LAG.labels(group, topic).set(lag)
        total += lag
    return total
