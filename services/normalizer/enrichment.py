"""Directory object ids → display names through Microsoft Graph, batched and cached, never blocking.

The normalizer names users, groups, service principals and devices that a raw record shows only by id.
Graph's `POST /v1.0/directoryObjects/getByIds` resolves up to 1,000 ids per call. Answers are cached with
a TTL (a Faust table on Kafka, a SQLite table in the embedded runtime) so a restart does not re-resolve
everything. When Graph is down or refuses, the events are published anyway with their ids and
`enrichment: "pending"`; `aoc renormalize` publishes resolved versions later. This module must never drop
an event, never log a token, and never call Graph without `http_retry`'s timeouts and backoff.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx

from aoc_common.events import CanonicalEvent
from aoc_common.http_retry import RetriesExhausted, RetryPolicy, request_with_retries
from aoc_common.logging import get_logger
from aoc_common.metrics import ENRICHMENT_LOOKUPS
from aoc_normalizer.core import DirectoryName, unresolved_directory_ids, with_directory_names
from aoc_normalizer.dedupe import now_ms
from aoc_normalizer.mappings import Mappings

log = get_logger(__name__)

GET_BY_IDS_LIMIT = 1000  # Graph's bound on ids per getByIds call
# Directory object ids are GUIDs; Graph answers 400 for the whole batch if one id is not.
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class TokenSource(Protocol):
    """The shape of `aoc_common.entra_auth.EntraTokenProvider` (contracts.md §1)."""

    async def token(self, scope: str) -> str: ...

    def invalidate(self, scope: str) -> None: ...


class GraphUnavailable(RuntimeError):
    """Graph did not give an answer for this batch (down, throttled past our patience, or refusing)."""


class DirectoryLookup(Protocol):
    async def get_by_ids(self, ids: Sequence[str]) -> dict[str, DirectoryName]: ...


@dataclass(frozen=True, slots=True)
class CachedName:
    name: DirectoryName
    resolved_at_ms: int


class NameCache(Protocol):
    """Where resolved names are kept between batches and across restarts."""

    def cached_names(self, ids: Sequence[str]) -> dict[str, CachedName]: ...

    def remember_names(self, names: Mapping[str, CachedName]) -> None: ...


class GraphDirectoryObjects:
    """`getByIds` over httpx with the shared retry discipline; one call per ≤1,000 ids."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        tokens: TokenSource,
        base_url: str = "https://graph.microsoft.com",
        policy: RetryPolicy | None = None,
    ) -> None:
        self.client = client
        self.tokens = tokens
        self.base_url = base_url.rstrip("/")
        self.scope = f"{self.base_url}/.default"
        self.policy = policy or RetryPolicy()

    async def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.tokens.token(self.scope)}"}

    async def _refresh(self) -> None:
        self.tokens.invalidate(self.scope)

    async def get_by_ids(self, ids: Sequence[str]) -> dict[str, DirectoryName]:
        """Every id asked about: found ones with their names, the others `found=False`.

        Raises GraphUnavailable when Graph does not answer a batch; batches answered before it are lost
        to the caller too, which keeps the contract simple (the cache keeps what was stored).
        """
        answers: dict[str, DirectoryName] = {
            i: DirectoryName(found=False) for i in ids if not _GUID.match(i)
        }
        guids = [i for i in dict.fromkeys(ids) if _GUID.match(i)]
        for start in range(0, len(guids), GET_BY_IDS_LIMIT):
            batch = guids[start : start + GET_BY_IDS_LIMIT]
            answers.update(await self._get_batch(batch))
        return answers

    async def _get_batch(self, ids: list[str]) -> dict[str, DirectoryName]:
        url = f"{self.base_url}/v1.0/directoryObjects/getByIds"
        try:
            response = await request_with_retries(
                self.client,
                "POST",
                url,
                target="graph",
                policy=self.policy,
                auth_headers=self._auth_headers,
                refresh_auth=self._refresh,
                json={"ids": ids},
            )
        except RetriesExhausted as error:
            ENRICHMENT_LOOKUPS.labels("unavailable").inc()
            raise GraphUnavailable(str(error)) from None
        except httpx.HTTPError as error:  # e.g. an invalid URL: never let it stop the agent
            ENRICHMENT_LOOKUPS.labels("unavailable").inc()
            raise GraphUnavailable(f"graph: {type(error).__name__}: {error}") from None
        if response.status_code != 200:
            ENRICHMENT_LOOKUPS.labels("refused").inc()
            raise GraphUnavailable(f"graph: getByIds answered HTTP {response.status_code}")
        try:
            found = _parse_objects(response.json())
        except ValueError as error:
            ENRICHMENT_LOOKUPS.labels("refused").inc()
            raise GraphUnavailable(f"graph: unreadable getByIds answer: {error}") from None
        ENRICHMENT_LOOKUPS.labels("answered").inc()
        return {i: found.get(i.lower(), DirectoryName(found=False)) for i in ids}


def _parse_objects(document: Any) -> dict[str, DirectoryName]:
    if not isinstance(document, dict) or not isinstance(document.get("value"), list):
        raise ValueError("no `value` list")
    found: dict[str, DirectoryName] = {}
    for item in document["value"]:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        display = item.get("displayName")
        upn = item.get("userPrincipalName")
        found[item["id"].lower()] = DirectoryName(
            found=True,
            display_name=display if isinstance(display, str) and display else None,
            user_principal_name=upn if isinstance(upn, str) and upn else None,
        )
    return found


class Enricher:
    """Fills in directory names for a batch of events: cache first, then one Graph round per batch."""

    def __init__(
        self,
        lookup: DirectoryLookup | None,
        cache: NameCache,
        ttl: timedelta = timedelta(hours=24),
        pause_after_failure: timedelta = timedelta(minutes=1),
    ) -> None:
        self.lookup = lookup
        self.cache = cache
        self.ttl_ms = int(ttl.total_seconds() * 1000)
        # After Graph failed, batches go out pending at once for a while instead of each one waiting
        # through its own retries: an outage must not slow the whole stream down.
        self.pause_ms = int(pause_after_failure.total_seconds() * 1000)
        self._paused_until_ms = 0

    @property
    def enabled(self) -> bool:
        return self.lookup is not None

    async def enrich(
        self, events: Sequence[CanonicalEvent], mappings: Mappings, now: datetime
    ) -> list[CanonicalEvent]:
        """The same events, named where Graph (or the cache) knows the ids; never fewer events."""
        wanted = list(dict.fromkeys(i for e in events for i in unresolved_directory_ids(e)))
        if not wanted or self.lookup is None:
            return list(events)
        at_ms = now_ms(now)
        names = {
            i: cached.name
            for i, cached in self.cache.cached_names(wanted).items()
            if at_ms - cached.resolved_at_ms < self.ttl_ms
        }
        missing = [i for i in wanted if i not in names]
        if missing and at_ms >= self._paused_until_ms:
            try:
                resolved = await self.lookup.get_by_ids(missing)
            except GraphUnavailable as error:
                self._paused_until_ms = at_ms + self.pause_ms
                log.warning(
                    "enrichment pending: events published with ids",
                    reason=str(error),
                    ids=len(missing),
                    graph_retried_after_s=self.pause_ms // 1000,
                )
            else:
                self.cache.remember_names({i: CachedName(n, at_ms) for i, n in resolved.items()})
                names.update(resolved)
        return [with_directory_names(e, names, mappings, unresolved="pending") for e in events]


class MemoryNameCache:
    """Names kept for one process only: for one-off runs such as `aoc renormalize`, and for tests."""

    def __init__(self) -> None:
        self._names: dict[str, CachedName] = {}

    def cached_names(self, ids: Sequence[str]) -> dict[str, CachedName]:
        return {i: self._names[i] for i in ids if i in self._names}

    def remember_names(self, names: Mapping[str, CachedName]) -> None:
        self._names.update(names)
