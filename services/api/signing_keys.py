"""The tenant's token signing keys (JWKS), cached so that no valid request ever waits on a forged one.

A token names its key by `kid`. A known kid is answered from the cache at once, always: when the
cache is older than its TTL the key is still used while one background fetch renews the set. Only a
token naming a kid the cache does not hold can cause a fetch, and then:

- one fetch at a time (single flight): every request that needs the key set joins the fetch in
  flight instead of starting another, and nothing is locked while it runs;
- each request waits for it at most `request_budget_s`; the fetch itself is bounded by
  `fetch_timeout_s` and goes on in the background if a request stops waiting;
- fetches are spaced: after a successful fetch the next one may start `min_refetch_interval_s` later
  (so a rotated key is picked up within seconds), after a failed one the same interval, doubled per
  consecutive failure up to `max_backoff_s`, and never sooner than the key endpoint's `Retry-After`;
- a kid that the latest key set did not hold is remembered (at most `max_unknown_kids`, for
  `unknown_kid_memory_s`) and answered 401 at once until the set changes.

So a flood of tokens with made-up kids costs at most one outbound request per interval, and a slow
or failing key endpoint delays only the requests that could not be verified anyway. This module
never sees a token, only kids.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import httpx

from aoc_common.http_retry import retry_after_s
from aoc_common.logging import get_logger

log = get_logger(__name__)

JWKS_TTL_S = 3600.0
JWKS_MIN_REFETCH_INTERVAL_S = 10.0
JWKS_MAX_BACKOFF_S = 300.0
JWKS_FETCH_TIMEOUT_S = 5.0
# How long one request may wait for the key set: a sign-in page waits, a flood does not pile up.
JWKS_REQUEST_BUDGET_S = 2.0
JWKS_MAX_UNKNOWN_KIDS = 1024
JWKS_UNKNOWN_KID_MEMORY_S = 600.0


class UnknownSigningKey(Exception):
    """The tenant's current key set does not hold this kid: the token is not the tenant's."""


class KeysUnavailable(Exception):
    """The key set could not be fetched (in time): whether the kid is real cannot be told now."""


class JwksCache:
    """The tenant's signing keys by kid; see the module docstring for the fetching discipline."""

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float = JWKS_TTL_S,
        min_refetch_interval_s: float = JWKS_MIN_REFETCH_INTERVAL_S,
        max_backoff_s: float = JWKS_MAX_BACKOFF_S,
        fetch_timeout_s: float = JWKS_FETCH_TIMEOUT_S,
        request_budget_s: float = JWKS_REQUEST_BUDGET_S,
        max_unknown_kids: int = JWKS_MAX_UNKNOWN_KIDS,
        unknown_kid_memory_s: float = JWKS_UNKNOWN_KID_MEMORY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.min_refetch_interval_s = min_refetch_interval_s
        self.max_backoff_s = max_backoff_s
        self.fetch_timeout_s = fetch_timeout_s
        self.request_budget_s = request_budget_s
        self.max_unknown_kids = max_unknown_kids
        self.unknown_kid_memory_s = unknown_kid_memory_s
        self._clock = clock
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._next_fetch_at = float("-inf")  # earliest start of the next fetch
        self._failures = 0  # consecutive failed fetches
        self._last_problem: str | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._unknown_kids: OrderedDict[str, float] = OrderedDict()  # kid -> forget at

    async def aclose(self) -> None:
        """Stop a fetch in flight (at shutdown): nothing is left running after the app."""
        fetch = self._inflight
        if fetch is not None:
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fetch

    async def key(self, kid: str) -> dict[str, Any]:
        """The JWK for `kid`. Raises `UnknownSigningKey` (the token is refused) or
        `KeysUnavailable` (the key set cannot be read now)."""
        found = self._keys.get(kid)
        if found is not None:
            if self._fetched_at is None or self._clock() - self._fetched_at >= self.ttl_s:
                self._start_fetch_if_due()  # renew in the background; this key answers now
            return found
        if self._remembered_unknown(kid):
            raise UnknownSigningKey(kid)
        fetch = self._inflight or self._start_fetch_if_due()
        if fetch is not None:
            try:
                await asyncio.wait_for(asyncio.shield(fetch), self.request_budget_s)
            except TimeoutError:
                raise KeysUnavailable("the key endpoint did not answer in time") from None
        found = self._keys.get(kid)
        if found is not None:
            return found
        if self._failures or self._fetched_at is None:
            raise KeysUnavailable(self._last_problem or "signing keys not fetched yet")
        self._remember_unknown(kid)
        raise UnknownSigningKey(kid)

    def _start_fetch_if_due(self) -> asyncio.Task[None] | None:
        if self._inflight is not None:
            return self._inflight
        if self._clock() < self._next_fetch_at:
            return None
        self._inflight = asyncio.create_task(self._fetch(), name="jwks-fetch")
        return self._inflight

    async def _fetch(self) -> None:
        """One request for the key set; records the outcome and never raises."""
        retry_after: float | None = None
        try:
            async with asyncio.timeout(self.fetch_timeout_s):
                async with httpx.AsyncClient(timeout=self.fetch_timeout_s) as client:
                    response = await client.get(self.url)
            if response.status_code != 200:
                retry_after = retry_after_s(response)
                raise KeysUnavailable(f"signing keys: HTTP {response.status_code}")
            self._store(_rsa_keys(response.json()))
        except (KeysUnavailable, TimeoutError, httpx.HTTPError, ValueError) as error:
            self._failed(_describe(error), retry_after)
        except Exception as error:  # a bug here must not leave the task's error unread
            log.exception("jwks_fetch_crashed")
            self._failed(_describe(error), None)
        finally:
            self._inflight = None

    def _store(self, keys: dict[str, dict[str, Any]]) -> None:
        now = self._clock()
        self._keys = keys
        self._fetched_at = now
        self._failures = 0
        self._last_problem = None
        self._next_fetch_at = now + self.min_refetch_interval_s
        for kid in keys:
            self._unknown_kids.pop(kid, None)
        log.info("jwks_fetched", keys=len(keys))

    def _failed(self, problem: str, retry_after: float | None) -> None:
        self._failures += 1
        self._last_problem = problem
        backoff = min(self.max_backoff_s, self.min_refetch_interval_s * 2 ** (self._failures - 1))
        backoff *= random.uniform(1.0, 1.25)  # noqa: S311 - spreads replicas, not cryptography
        if retry_after is not None:
            backoff = max(backoff, min(retry_after, self.max_backoff_s))
        self._next_fetch_at = self._clock() + backoff
        log.warning(
            "jwks_fetch_failed",
            problem=problem,
            failures=self._failures,
            cached_keys=len(self._keys),
            next_attempt_in_s=round(backoff, 1),
        )

    def _remembered_unknown(self, kid: str) -> bool:
        forget_at = self._unknown_kids.get(kid)
        if forget_at is None:
            return False
        if self._clock() >= forget_at:
            del self._unknown_kids[kid]
            return False
        return True

    def _remember_unknown(self, kid: str) -> None:
        self._unknown_kids[kid] = self._clock() + self.unknown_kid_memory_s
        self._unknown_kids.move_to_end(kid)
        while len(self._unknown_kids) > self.max_unknown_kids:
            self._unknown_kids.popitem(last=False)


def _rsa_keys(document: Any) -> dict[str, dict[str, Any]]:
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise KeysUnavailable("signing keys: the answer has no `keys` list")
    return {
        key["kid"]: key
        for key in keys
        if isinstance(key, dict) and isinstance(key.get("kid"), str) and key.get("kty") == "RSA"
    }


def _describe(error: Exception) -> str:
    if isinstance(error, KeysUnavailable):
        return str(error)
    if isinstance(error, TimeoutError):
        return "signing keys: no answer in time"
    if isinstance(error, ValueError):
        return "signing keys: the answer is not JSON"
    return f"signing keys: {type(error).__name__}"
