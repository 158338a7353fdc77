"""Collection endpoints: source health (read from the store), forced fetches, Graph notifications.

The API never imports the collector, which runs in its own process: source health is the state the
collector writes in the event store, and the two writes are forwarded to the collector's control
endpoint at COLLECTOR_URL (over HTTP, with `http_retry`). `aoc demo` runs both in one process and
wires COLLECTOR_URL to the control endpoint it serves on loopback.

Guards: `GET /api/fetch-audit-logs` triggers writes, so it needs a writer although it is a GET;
`GET /api/source-health` needs a reader. `POST /api/webhooks/graph` is called by Microsoft Graph,
which cannot hold our tokens: it is authenticated by the subscription's `clientState` instead
(GRAPH_WEBHOOK_CLIENT_STATE), and the app-wide guard leaves it public.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

import httpx
import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from aoc_api.auth import require_reader, require_writer
from aoc_api.dependencies import get_settings, get_store
from aoc_api.openapi import STORE_RESPONSES
from aoc_api.problems import problem
from aoc_common.event_store.base import EventStore
from aoc_common.events import Source
from aoc_common.http_retry import RetriesExhausted, RetryPolicy, request_with_retries
from aoc_common.logging import get_logger
from aoc_common.settings import Settings
from aoc_common.source_health import read_source_health
from aoc_common.sources import all_sources
from aoc_common.sources.spec import GraphPaging

# Set to [Depends(require_reader)] / [Depends(require_writer)] at merge (contracts.md §4).
READ_GUARD: list[DependsParam] = [Depends(require_reader)]
WRITE_GUARD: list[DependsParam] = [Depends(require_writer)]

DEFAULT_HOURS = 168
MAX_HOURS = 720
MAX_VALIDATION_TOKEN_CHARS = 4096
MAX_NOTIFICATION_BYTES = 1_000_000
# A forced fetch collects while the request waits: allow a long read, not a long connect.
FETCH_TIMEOUT = httpx.Timeout(connect=5.0, read=900.0, write=10.0, pool=5.0)
TRIGGER_TIMEOUT = httpx.Timeout(5.0)
FORWARD_POLICY = RetryPolicy(max_attempts=3, base_delay_s=0.2, max_delay_s=2.0)

router = APIRouter(tags=["sources"])
# The body Graph posts (read by hand below, so that its size is checked before it is parsed).
NOTIFICATIONS: dict[str, Any] = {
    "type": "object",
    "required": ["value"],
    "properties": {
        "value": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "clientState": {"type": "string"},
                    "resource": {"type": "string"},
                    "changeType": {"type": "string"},
                },
            },
        }
    },
}
COLLECTOR_RESPONSES: dict[int | str, dict[str, Any]] = {
    502: {"description": "The collector could not be reached, or refused the request"},
    503: {
        "description": "COLLECTOR_URL is not set: the API does not know where the collector runs"
    },
}
log = get_logger(__name__)


@router.get(
    "/api/source-health",
    summary="Last collection run per source: status, times, error, count, watermark, warnings",
    dependencies=READ_GUARD,
    responses=STORE_RESPONSES,
)
async def source_health(store: Annotated[EventStore, Depends(get_store)]) -> dict[str, Any]:
    health = await read_source_health(store)
    return {"sources": [h.model_dump(mode="json") for h in health]}


@router.get(
    "/api/fetch-audit-logs",
    summary="Collect the last `hours` (default 168, at most 720) now; counts and warnings per source",
    dependencies=WRITE_GUARD,
    responses=COLLECTOR_RESPONSES,
)
async def fetch_audit_logs(
    settings: Annotated[Settings, Depends(get_settings)],
    hours: Annotated[int, Query(ge=1)] = DEFAULT_HOURS,
) -> Response:
    capped = min(hours, MAX_HOURS)
    answer = await _forward(settings, "POST", "/fetch", FETCH_TIMEOUT, params={"hours": capped})
    if not isinstance(answer, dict):
        return answer
    if capped != hours:
        answer.setdefault("notes", []).append(f"hours={hours} capped at {MAX_HOURS}")
    return JSONResponse(answer)


@router.post(
    "/api/webhooks/graph",
    summary="Microsoft Graph change notifications: validation handshake, then a fetch per source",
    status_code=202,
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": NOTIFICATIONS}}}},
    responses={
        200: {
            "description": "Subscription handshake: the validationToken, echoed",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        400: {"description": "The body is not a notification batch, or the token is too long"},
        401: {"description": "No notification carried the expected clientState"},
        413: {"description": "The notification batch is too large"},
        **COLLECTOR_RESPONSES,
        503: {"description": "GRAPH_WEBHOOK_CLIENT_STATE or COLLECTOR_URL is not set: webhook off"},
    },
)
async def graph_webhook(
    request: Request,
    settings: Annotated[Settings, Depends(get_settings)],
    validation_token: Annotated[str | None, Query(alias="validationToken")] = None,
) -> Response:
    secret = settings.graph_webhook_client_state
    if secret is None:
        return problem(
            503, "Webhook not configured", "Set GRAPH_WEBHOOK_CLIENT_STATE to accept it."
        )
    body = await request.body()
    if len(body) > MAX_NOTIFICATION_BYTES:
        return problem(413, "Payload too large", "notification batch too large")
    if validation_token is not None and not body.strip():
        # Subscription handshake (an empty POST): echo the token, as plain text, within the
        # request (10 s limit).
        if len(validation_token) > MAX_VALIDATION_TOKEN_CHARS:
            return problem(400, "Invalid request", "validationToken is too long")
        return PlainTextResponse(validation_token)
    if not body.strip():  # nothing that could carry the clientState
        return problem(401, "Unauthorized", "no notification carried the expected clientState")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return problem(400, "Invalid request", "body is not JSON")
    notifications = document.get("value") if isinstance(document, dict) else None
    if not isinstance(notifications, list):
        return problem(400, "Invalid request", 'expected {"value": [notification, ...]}')
    expected = secret.get_secret_value().encode()
    sources: list[Source] = []
    rejected = 0
    for notification in notifications:
        state = notification.get("clientState") if isinstance(notification, dict) else None
        if not (isinstance(state, str) and hmac.compare_digest(state.encode(), expected)):
            rejected += 1
            continue
        source = source_of_resource(str(notification.get("resource", "")))
        if source is not None and source not in sources:
            sources.append(source)
    if rejected == len(notifications):
        return problem(401, "Unauthorized", "no notification carried the expected clientState")
    if not sources:  # genuine, but about nothing any audit source collects
        return JSONResponse(
            {"accepted": len(notifications) - rejected, "rejected": rejected, "sources": []},
            status_code=202,
        )
    answer = await _forward(
        settings, "POST", "/trigger", TRIGGER_TIMEOUT, json={"sources": sources}
    )
    if not isinstance(answer, dict):
        return answer
    return JSONResponse(
        {"accepted": len(notifications) - rejected, "rejected": rejected, "sources": sources},
        status_code=202,
    )


def source_of_resource(resource: str) -> Source | None:
    """Which audit source a Graph notification's resource hints at (None: none of them).

    Graph offers no change notifications on the audit collections themselves; subscriptions on
    directory objects (users, groups, applications…) or on Intune resources (`deviceManagement/…`)
    say that an admin changed something, so the matching audit log gets a fetch. Each Graph
    source lists the resource prefixes it is `notified_by`; the longest matching prefix wins.
    """
    path = resource.lstrip("/").lower()
    best: tuple[int, Source] | None = None
    for spec in all_sources():
        prefixes = spec.collection.notified_by if isinstance(spec.collection, GraphPaging) else ()
        for prefix in prefixes:
            if path.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), spec.id)
    return None if best is None else best[1]


async def _forward(
    settings: Settings, method: str, path: str, limits: httpx.Timeout, **request: Any
) -> dict[str, Any] | Response:
    """The collector control endpoint's JSON answer, or the problem response to return instead."""
    if settings.collector_url is None:
        return problem(
            503,
            "Collector not reachable",
            "COLLECTOR_URL is not set: the API does not know where the collector runs.",
        )
    headers = {}
    if settings.collector_control_token is not None:
        headers["Authorization"] = f"Bearer {settings.collector_control_token.get_secret_value()}"
    try:
        async with httpx.AsyncClient(timeout=limits) as client:
            response = await request_with_retries(
                client,
                method,
                settings.collector_url + path,
                target="collector",
                policy=FORWARD_POLICY,
                headers=headers,
                **request,
            )
    except RetriesExhausted as error:
        log.warning("collector unreachable", error=str(error))
        return problem(502, "Collector not reachable", str(error))
    if response.status_code >= 400:
        return problem(
            502,
            "Collector refused the request",
            f"collector answered HTTP {response.status_code}: {response.text[:300]}",
        )
    answer: dict[str, Any] = response.json()
    return answer
