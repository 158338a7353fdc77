"""The live collector's shell: Microsoft Graph and the Management Activity API → `aoc.raw.<source>`.

One run of one source: plan its window from the stored watermark (core), read every page with
`request_with_retries`, publish each page's new records and wait for the log's acknowledgement, and
only when the last page is published move the watermark. A page that still fails after its retries
stops that source's run where it is: the watermark stays, the error goes to source health, and the
other sources carry on. Runs never overlap (one lock), whether started by the schedule, by
`/api/fetch-audit-logs` or by a Graph change notification.

Bearer tokens are only sent to the configured Graph / Management API origins, never to a host a
page points at; tokens and secrets never reach a log line or a health record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from pydantic import BaseModel, Field

from aoc_collector.core import (
    SourceWatermark,
    Window,
    advance_watermark,
    boundary_ids,
    content_windows,
    envelopes,
    fetched_content_key,
    management_time,
    new_records,
    plan_window,
    prune_fetched_content,
    same_origin,
    watermark_key,
)
from aoc_collector.runtime import publish_envelopes
from aoc_common.entra_auth import TokenProvider, default_scope
from aoc_common.event_store.base import EventStore
from aoc_common.events import Source, utc_now
from aoc_common.http_retry import RetryPolicy, Sleep, request_with_retries
from aoc_common.logging import get_logger
from aoc_common.message_log.base import MessageLog
from aoc_common.settings import Settings
from aoc_common.source_health import SourceHealth, read_source_health, write_source_health
from aoc_common.sources import SOURCES, SourceSpec, load_source_options, source_spec
from aoc_common.sources.spec import GraphPaging, ManagementActivityFeed

log = get_logger("collector")

# Every call to Microsoft: connect fast, allow a slow (large) page, never hang.
MICROSOFT_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=30.0)
MAX_ERROR_CHARS = 500
DEFAULT_POLICY = RetryPolicy()


class CollectionError(RuntimeError):
    """An answer the collector cannot go past; the message is fit for the health panel."""


class SourceRun(BaseModel):
    """What one run of one source did (the fetch endpoint's answer, per source)."""

    source: Source
    status: str
    count: int = 0
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None


class CollectionReport(BaseModel):
    sources: list[SourceRun]

    @property
    def total(self) -> int:
        return sum(run.count for run in self.sources)

    def summary(self) -> dict[str, Any]:
        """The JSON `/api/fetch-audit-logs` returns: counts and warnings per source."""
        return {
            "total": self.total,
            "counts": {run.source: run.count for run in self.sources},
            "warnings": {run.source: run.warnings for run in self.sources if run.warnings},
            "errors": {run.source: run.error for run in self.sources if run.error},
            "sources": [run.model_dump(mode="json") for run in self.sources],
        }


@dataclass
class _Progress:
    count: int = 0
    warnings: list[str] = field(default_factory=list)


class Collector:
    """Collects every registered source into its raw topic; state lives in the event store.

    How a source is read follows its collection strategy (`aoc_common.sources`): Graph paging or
    Management Activity content blobs. `source_options`: each source's own settings (default: read
    from the environment).
    """

    def __init__(
        self,
        *,
        message_log: MessageLog,
        store: EventStore,
        settings: Settings,
        http: httpx.AsyncClient,
        tokens: TokenProvider,
        now: Callable[[], datetime] = utc_now,
        sleep: Sleep = asyncio.sleep,
        policy: RetryPolicy = DEFAULT_POLICY,
        source_options: Mapping[str, BaseModel] | None = None,
    ) -> None:
        self._log = message_log
        self._store = store
        self._settings = settings
        self._http = http
        self._tokens = tokens
        self._now = now
        self._sleep = sleep
        self._policy = policy
        self._options = load_source_options() if source_options is None else source_options
        self._graph = settings.graph_base_url
        self._management = settings.management_api_base_url
        self._lock = asyncio.Lock()
        self._pending: set[Source] = set()
        self._background: set[asyncio.Task[CollectionReport]] = set()

    # --- entry points ---

    async def run(
        self, sources: Sequence[Source] = SOURCES, *, forced_hours: int | None = None
    ) -> CollectionReport:
        """Collect `sources` (concurrently); waits for a run already in progress to finish first."""
        async with self._lock:
            runs = await asyncio.gather(
                *(self._run_source(source, forced_hours) for source in sources)
            )
        return CollectionReport(sources=list(runs))

    def trigger(self, sources: Sequence[Source]) -> list[Source]:
        """Start a run in the background (a change notification); coalesces repeated triggers.

        Returns the sources newly scheduled (those already waiting for the lock are not repeated).
        """
        wanted = [s for s in dict.fromkeys(sources) if s not in self._pending]
        if not wanted:
            return []
        self._pending.update(wanted)

        async def _run() -> CollectionReport:
            try:
                async with self._lock:
                    self._pending.difference_update(wanted)
                    runs = await asyncio.gather(*(self._run_source(s, None) for s in wanted))
                return CollectionReport(sources=list(runs))
            finally:
                self._pending.difference_update(wanted)

        task = asyncio.create_task(_run())
        self._background.add(task)
        task.add_done_callback(self._triggered_run_done)
        return wanted

    def _triggered_run_done(self, task: asyncio.Task[CollectionReport]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("triggered collection failed", error=_describe(task.exception()))  # type: ignore[arg-type]

    async def run_periodically(self, stop: asyncio.Event, interval_s: float) -> None:
        """Run now, then every `interval_s` until `stop`; the lock keeps runs from overlapping."""
        while not stop.is_set():
            try:
                await self.run()
            except (
                Exception
            ):  # the store itself failing: try again next interval, keep the schedule
                log.exception("collection run failed before reaching the sources")
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            except TimeoutError:
                continue

    async def wait_idle(self) -> None:
        """Until background runs (triggers) are done; used at shutdown and by tests."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # --- one source ---

    async def _run_source(self, source: Source, forced_hours: int | None) -> SourceRun:
        started = self._now()
        previous_health = {h.source: h for h in await read_source_health(self._store)}[source]
        state = SourceWatermark.model_validate(
            await self._store.get_state(watermark_key(source)) or {}
        )
        window = plan_window(
            source,
            now=started,
            watermark=state.watermark,
            overlap=timedelta(minutes=self._settings.fetch_overlap_minutes),
            forced_hours=forced_hours,
        )
        progress = _Progress(warnings=list(window.warnings))
        error: str | None = None
        spec = source_spec(source)
        try:
            if isinstance(spec.collection, ManagementActivityFeed):
                await self._collect_feed(spec, spec.collection, window, progress)
                new_state = SourceWatermark(watermark=advance_watermark(state.watermark, window))
            else:
                new_state = await self._collect_graph(
                    spec, spec.collection, window, state, progress
                )
            await self._store.put_state(watermark_key(source), new_state.model_dump(mode="json"))
        except Exception as failure:  # one source's failure is a health record, not a crash
            error = _describe(failure)
            new_state = state
            log.warning("collection failed", source=source, error=error)
        health = SourceHealth(
            source=source,
            status="error" if error else "ok",
            last_run_at=started,
            last_success_at=previous_health.last_success_at if error else started,
            last_error=error,
            last_count=progress.count,
            watermark=new_state.watermark,
            warnings=progress.warnings,
        )
        await write_source_health(self._store, health)
        log.info(
            "collection run",
            source=source,
            status=health.status,
            count=progress.count,
            window_start=window.start.isoformat(),
        )
        return SourceRun(
            source=source,
            status=health.status,
            count=progress.count,
            warnings=progress.warnings,
            error=error,
            window_start=window.start,
            window_end=window.end,
        )

    async def _collect_graph(
        self,
        spec: SourceSpec,
        paging: GraphPaging,
        window: Window,
        state: SourceWatermark,
        progress: _Progress,
    ) -> SourceWatermark:
        source = spec.id
        scope = default_scope(self._graph)
        request = paging.first_request(window.start, window.end, self._options.get(source))
        url: str | None = f"{self._graph}/{request.api_version}/{request.path}"
        params: dict[str, str] | None = request.params
        seen = set(state.boundary_ids)
        overlap = timedelta(minutes=self._settings.fetch_overlap_minutes)
        boundary: set[str] = set()
        while url is not None:
            body = _json(await self._get(url, scope, "graph", params), url)
            if not isinstance(body, dict) or not isinstance(body.get("value"), list):
                raise CollectionError(f"graph: {_path(url)} answered without a `value` array")
            fresh = new_records(source, body["value"], seen)
            await self._publish(source, fresh)
            progress.count += len(fresh)
            boundary.update(boundary_ids(source, fresh, window.end - overlap))
            next_link = body.get("@odata.nextLink")
            if next_link is not None and not (
                isinstance(next_link, str) and same_origin(next_link, self._graph)
            ):
                raise CollectionError(
                    f"graph: refusing @odata.nextLink outside GRAPH_BASE_URL: {next_link!r:.120}"
                )
            url, params = next_link, None
        watermark = advance_watermark(state.watermark, window)
        if watermark == state.watermark:
            return state  # a forced window that did not reach the watermark leaves it alone
        return SourceWatermark(watermark=watermark, boundary_ids=sorted(boundary))

    async def _collect_feed(
        self,
        spec: SourceSpec,
        activity: ManagementActivityFeed,
        window: Window,
        progress: _Progress,
    ) -> None:
        scope = default_scope(self._management)
        tenant = self._settings.tenant_id or ""
        feed = f"{self._management}/api/v1.0/{tenant}/activity/feed"
        publisher = {"PublisherIdentifier": tenant}
        await self._ensure_subscriptions(feed, scope, publisher, activity.content_types)
        state_key = fetched_content_key(spec.id)
        stored = await self._store.get_state(state_key) or {}
        fetched = prune_fetched_content(dict(stored.get("content", {})), self._now())
        try:
            for content_type in activity.content_types:
                for part in content_windows(window):
                    url: str | None = f"{feed}/subscriptions/content"
                    params: dict[str, str] | None = {
                        "contentType": content_type,
                        "startTime": management_time(part.start),
                        "endTime": management_time(part.end),
                        **publisher,
                    }
                    while url is not None:
                        response = await self._get(url, scope, "management-api", params)
                        listing = _json(response, url)
                        if not isinstance(listing, list):
                            raise CollectionError(
                                f"management-api: {_path(url)} answered without a content list"
                            )
                        for item in listing:
                            await self._fetch_content(
                                spec, item, scope, publisher, fetched, progress
                            )
                        next_page = response.headers.get("NextPageUri")
                        if next_page and not same_origin(next_page, self._management):
                            raise CollectionError(
                                "management-api: refusing NextPageUri outside "
                                f"MANAGEMENT_API_BASE_URL: {next_page!r:.120}"
                            )
                        # The identifier keeps our throttling quota our own on every page.
                        url = _with_params(next_page, publisher) if next_page else None
                        params = None
                        await self._store.put_state(state_key, {"content": fetched})
        finally:
            await self._store.put_state(state_key, {"content": fetched})

    async def _ensure_subscriptions(
        self, feed: str, scope: str, publisher: dict[str, str], content_types: Sequence[str]
    ) -> None:
        """Start the content subscriptions that are not enabled yet."""
        listing = _json(
            await self._get(f"{feed}/subscriptions/list", scope, "management-api", publisher),
            f"{feed}/subscriptions/list",
        )
        enabled = {
            s.get("contentType")
            for s in (listing if isinstance(listing, list) else [])
            if isinstance(s, dict) and s.get("status") == "enabled"
        }
        for content_type in content_types:
            if content_type in enabled:
                continue
            url = f"{feed}/subscriptions/start"
            response = await self._request(
                "POST", url, scope, "management-api", {"contentType": content_type, **publisher}
            )
            if response.status_code >= 400 and "AF20024" not in response.text:
                raise CollectionError(_api_error("management-api", "POST", url, response))

    async def _fetch_content(
        self,
        spec: SourceSpec,
        item: Any,
        scope: str,
        publisher: dict[str, str],
        fetched: dict[str, str],
        progress: _Progress,
    ) -> None:
        if not isinstance(item, dict) or not isinstance(item.get("contentId"), str):
            raise CollectionError(f"management-api: content entry without contentId: {item!r:.120}")
        content_id = item["contentId"]
        if content_id in fetched:
            return
        uri = item.get("contentUri")
        if not (isinstance(uri, str) and same_origin(uri, self._management)):
            raise CollectionError(
                f"management-api: refusing contentUri outside MANAGEMENT_API_BASE_URL: {uri!r:.120}"
            )
        records = _json(await self._get(uri, scope, "management-api", publisher), uri)
        if not isinstance(records, list):
            raise CollectionError(f"management-api: content {content_id} is not a record list")
        await self._publish(spec.id, records)
        progress.count += len(records)
        expires = item.get("contentExpiration")
        fetched[content_id] = (
            expires if isinstance(expires, str) else (self._now() + spec.history_limit).isoformat()
        )

    # --- I/O helpers ---

    async def _publish(self, source: Source, records: list[Any]) -> None:
        if not records:
            return
        items = envelopes(source, records, tenant_id=self._settings.tenant_id, fetched_at=utc_now())
        await publish_envelopes(self._log, items, max_record_bytes=self._settings.max_record_bytes)

    async def _get(
        self, url: str, scope: str, target: str, params: dict[str, str] | None
    ) -> httpx.Response:
        response = await self._request("GET", url, scope, target, params)
        if response.status_code >= 300:
            raise CollectionError(_api_error(target, "GET", url, response))
        return response

    async def _request(
        self, method: str, url: str, scope: str, target: str, params: dict[str, str] | None
    ) -> httpx.Response:
        async def auth_headers() -> dict[str, str]:
            return {"Authorization": f"Bearer {await self._tokens.token(scope)}"}

        async def refresh() -> None:
            self._tokens.invalidate(scope)

        return await request_with_retries(
            self._http,
            method,
            url,
            target=target,
            policy=self._policy,
            auth_headers=auth_headers,
            refresh_auth=refresh,
            sleep=self._sleep,
            params=params,
            timeout=MICROSOFT_TIMEOUT,
        )


def _json(response: httpx.Response, url: str) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as error:
        raise CollectionError(f"{_path(url)} answered invalid JSON: {error}") from None


def _with_params(url: str, params: dict[str, str]) -> str:
    """`url` with `params` added where its query lacks them (httpx would replace the query)."""
    parsed = httpx.URL(url)
    missing = {k: v for k, v in params.items() if k not in parsed.params}
    return str(parsed.copy_merge_params(missing)) if missing else url


def _path(url: str) -> str:
    return url.split("?", 1)[0]


def _api_error(target: str, method: str, url: str, response: httpx.Response) -> str:
    """`target: GET /path answered HTTP 403: Code: message` from Graph's or the feed's error body."""
    detail = response.text[:200]
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        detail = f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    return f"{target}: {method} {_path(url)} answered HTTP {response.status_code}: {detail}"[
        :MAX_ERROR_CHARS
    ]


def _describe(failure: Exception) -> str:
    text = str(failure) or type(failure).__name__
    if not isinstance(failure, CollectionError):
        text = f"{type(failure).__name__}: {text}"
    return text[:MAX_ERROR_CHARS]
