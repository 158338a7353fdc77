"""A circuit breaker: stop calling a peer that keeps failing, try again after a cool-down.

Retries with backoff handle a blip; a SIEM or a webhook that is down for an hour would otherwise be
hammered by every batch, each one retried to exhaustion. After `failure_threshold` consecutive failed
calls the breaker opens: callers must not call for `cooldown_s`. Then it is half-open: one call is let
through; its success closes the breaker, its failure opens it again for another cool-down.

Pure state over an injectable clock, so it is tested with plain values; it never sleeps or does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Counts consecutive failures of one peer; see the module docstring for the states."""

    def __init__(
        self,
        failure_threshold: int,
        cooldown_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if cooldown_s <= 0:
            raise ValueError("cooldown_s must be > 0")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        return "open" if self.retry_in_s() > 0 else "half_open"

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_in_s(self) -> float:
        """Seconds until a call may be made again; 0 when closed or half-open."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown_s - self._clock())

    def record_success(self) -> None:
        """The peer answered: close the breaker and forget earlier failures."""
        self._failures = 0
        self._opened_at = None

    def record_failure(self) -> bool:
        """Count a failed call; returns True when this failure (re)opens the breaker.

        A failure while half-open reopens at once: the trial call showed the peer is still down.
        """
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            return True
        return False
