"""A per-user budget of model calls: questions and explanations each spend one.

Every question or explanation costs a model provider money and takes a slot of its own rate limit,
and a script (or a stuck browser tab) must not spend them for everyone. Each user may make
`per_minute` requests in any sliding minute; the next one is refused with how long to wait
(answered 429 with `Retry-After`). Kept in memory, per API process: a restart forgets it, and N
API replicas allow N times the budget — enough against a runaway client, not a billing control.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

WINDOW_S = 60.0
# Users remembered at once; the least recently seen are forgotten first (their window has
# almost always passed anyway).
MAX_TRACKED_USERS = 10_000


class RateLimited(Exception):
    """The user spent the budget; `retry_after_s` is when the oldest request leaves the window."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many requests: try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class PerUserRateLimit:
    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._recent: dict[str, deque[float]] = {}

    def admit(self, user: str) -> None:
        """Count one request of `user`, or raise RateLimited without counting it."""
        now = self._clock()
        recent = self._recent.pop(user, None) or deque()
        while recent and recent[0] <= now - WINDOW_S:
            recent.popleft()
        self._recent[user] = recent  # most recently seen last
        if len(recent) >= self.per_minute:
            raise RateLimited(max(1, math.ceil(recent[0] + WINDOW_S - now)))
        recent.append(now)
        while len(self._recent) > MAX_TRACKED_USERS:
            del self._recent[next(iter(self._recent))]
