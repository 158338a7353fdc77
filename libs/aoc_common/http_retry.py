"""Outbound HTTP with the retry discipline every AOC call to the outside world follows.

Microsoft Graph, the Management Activity API, a SIEM and an alert webhook all throttle and fail in the
same ways, so one policy serves them: every attempt has a timeout (the client's), 429 and 503 wait for
`Retry-After` when the server sends one, other 5xx, 408 and network errors back off exponentially with
full jitter, and a 401 may refresh credentials once. What is left after the last attempt is raised as
`RetriesExhausted` with a reason fit for a health panel; this module never logs request bodies or
headers, which may hold tokens.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from aoc_common.logging import get_logger
from aoc_common.metrics import HTTP_RETRIES

log = get_logger(__name__)

THROTTLED = frozenset({429, 503})
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

Sleep = Callable[[float], Awaitable[None]]
AuthHeaders = Callable[[], Awaitable[Mapping[str, str]]]
RefreshAuth = Callable[[], Awaitable[None]]


class RetriesExhausted(RuntimeError):
    """The call still failed after every attempt; `status` is the last HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try. `max_retry_after_s` caps a server's wait so one call cannot hang for hours."""

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_retry_after_s: float = 300.0

    def backoff_s(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^(attempt-1))], so retries spread out."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


def retry_after_s(response: httpx.Response, now: datetime | None = None) -> float | None:
    """`Retry-After` in seconds, from delta-seconds or an HTTP date; None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


async def request_with_retries(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    target: str,
    policy: RetryPolicy = RetryPolicy(),
    auth_headers: AuthHeaders | None = None,
    refresh_auth: RefreshAuth | None = None,
    sleep: Sleep = asyncio.sleep,
    **request: Any,
) -> httpx.Response:
    """Send a request until it gets an answer worth returning.

    Returns any response that is not retried (2xx, 3xx, and 4xx other than 408/429, which the caller
    judges: a 400 is the caller's mistake, not the network's). `target` names the peer in metrics and
    errors (`graph`, `management-api`, `siem`…). A 401 calls `refresh_auth` once, then counts as final.
    """
    refreshed = False
    last_problem = "no attempt made"
    last_status: int | None = None
    base_headers = dict(request.pop("headers", None) or {})
    for attempt in range(1, policy.max_attempts + 1):
        headers = dict(base_headers)
        if auth_headers is not None:
            headers.update(await auth_headers())
        try:
            response = await client.request(method, url, headers=headers, **request)
        except httpx.TransportError as error:
            last_problem, last_status = f"{type(error).__name__}: {error}".rstrip(": "), None
            wait = policy.backoff_s(attempt)
        else:
            if response.status_code == 401 and refresh_auth is not None and not refreshed:
                refreshed = True
                await refresh_auth()
                continue
            if response.status_code not in RETRIED_STATUSES:
                return response
            last_status = response.status_code
            last_problem = f"HTTP {response.status_code}"
            server_wait = retry_after_s(response) if response.status_code in THROTTLED else None
            if server_wait is None:
                wait = policy.backoff_s(attempt)
            else:
                wait = min(server_wait, policy.max_retry_after_s)
                last_problem += f" (Retry-After {server_wait:g} s)"
        if attempt == policy.max_attempts:
            break
        HTTP_RETRIES.labels(target, str(last_status or "network")).inc()
        log.warning(
            "http_retry",
            target=target,
            attempt=attempt,
            problem=last_problem,
            wait_s=round(wait, 2),
        )
        await sleep(wait)
    raise RetriesExhausted(
        f"{target}: {method} {_without_query(url)} failed after {policy.max_attempts} attempts: "
        f"{last_problem}",
        status=last_status,
    )


def _without_query(url: str) -> str:
    """URLs in errors lose their query: a SAS token or a signature may live there."""
    return url.split("?", 1)[0]
