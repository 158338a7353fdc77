"""A local stand-in for Microsoft: Entra ID token endpoint, Graph audit APIs, Management Activity API.

FOR DEMOS AND TESTS ONLY. It serves saved API answers (the fixtures format, e.g. the bundled
`sample_data`) with the real protocols' shapes, so that the real collector code runs unchanged against
it: OpenID discovery and a client-credentials token endpoint that checks the client secret,
`@odata.nextLink` paging with `$filter`/`$top` on Graph (v1.0 and beta, every Graph source of the
registry, with its time field and `field/any(...)` filters), subscriptions, ≤ 24-hour content listing with
`NextPageUri` paging and the 7-day limit on the Management Activity API, and bearer tokens checked per
audience. Faults can be injected (a 429 with Retry-After, a 500, an expired token) to drill the
collector's retries. It is not a security boundary and never talks to Microsoft.

Layout on one origin (served over TLS, because msal only talks to an https authority):
- `/{tenant}/v2.0/.well-known/openid-configuration`, `/{tenant}/oauth2/v2.0/token` (AUTHORITY_HOST = origin)
- `/graph/v1.0/...` (GRAPH_BASE_URL = origin + `/graph`)
- `/manage/api/v1.0/{tenant}/activity/feed/...` (MANAGEMENT_API_BASE_URL = origin + `/manage`)
"""

from __future__ import annotations

import base64
import itertools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aoc_common.sources import SourceSpec, all_sources
from aoc_common.sources.samples import feed_sample, graph_sample_records
from aoc_common.sources.spec import GraphPaging, ManagementActivityFeed

GRAPH_PREFIX = "/graph"
GRAPH_VERSIONS = ("v1.0", "beta")
MANAGEMENT_PREFIX = "/manage"
# Every source the registry collects from Graph, by collection path; every Management content type.
GRAPH_SOURCES: dict[str, SourceSpec] = {
    spec.collection.path: spec for spec in all_sources() if isinstance(spec.collection, GraphPaging)
}
FEED_SOURCES: tuple[SourceSpec, ...] = tuple(
    spec for spec in all_sources() if isinstance(spec.collection, ManagementActivityFeed)
)
CONTENT_TYPES: tuple[str, ...] = tuple(
    dict.fromkeys(
        content_type
        for spec in FEED_SOURCES
        if isinstance(spec.collection, ManagementActivityFeed)
        for content_type in spec.collection.content_types
    )
)
TOKEN_LIFETIME_S = 3599
_TIME_BOUND = re.compile(r"(\w+) (ge|le) (\S+)")
# OData lambda on a collection field, as Graph takes it: `field/any(t: t eq 'a' or t eq 'b')`.
_ANY = re.compile(r"(\w+)/any\((\w+):\s*(.*?)\)")


@dataclass
class Fault:
    """Answer the next `times` requests whose path+query contains `match` with this fault instead.

    `kind`: "status" (answer `status`, with `Retry-After: retry_after` when given), "expired_token"
    (a 401 as Graph sends for an expired token, and the token presented stays refused) or "garbage"
    (a 200 whose body is not JSON, as a broken proxy might send).
    """

    match: str
    kind: str = "status"
    status: int = 500
    retry_after: int | None = None
    times: int = 1


@dataclass
class SeenRequest:
    method: str
    path: str
    query: dict[str, str]
    authorized: bool


@dataclass
class FakeMicrosoft:
    """The fake's data and switches; `app` is the ASGI application serving them."""

    fixtures: Path
    tenant_id: str = "00000000-0000-4000-8000-00000000c0de"
    client_id: str = "aoc-fake-client"
    client_secret: str = "aoc-fake-secret"  # noqa: S105 - the fake's own, documented demo credential
    now: datetime | None = None
    graph_page_size: int = 25
    token_lifetime_s: int = TOKEN_LIFETIME_S
    content_page_size: int = 1
    # Scopes for which tokens are issued without the app permission: the API then answers 401/403.
    unpermitted_scopes: set[str] = field(default_factory=set)
    faults: list[Fault] = field(default_factory=list)
    requests: list[SeenRequest] = field(default_factory=list)
    base_url: str = "https://127.0.0.1"
    # Drill: make @odata.nextLink point elsewhere (a client must not follow it with its token).
    graph_next_link_base: str | None = None

    def __post_init__(self) -> None:
        self._tokens: dict[str, tuple[str, bool]] = {}  # token -> (scope, permitted)
        self._revoked: set[str] = set()
        self._serial = itertools.count(1)
        self.enabled_subscriptions: set[str] = set()
        self.tokens_issued = 0
        self._graph = {
            path: graph_sample_records(spec, self.fixtures) for path, spec in GRAPH_SOURCES.items()
        }
        self._content: list[dict[str, Any]] = []
        self._blobs: dict[str, list[Any]] = {}
        for spec in FEED_SOURCES:
            feed = feed_sample(spec, self.fixtures)
            self._content += feed.content_list
            self._blobs.update(feed.blobs)
        if self.now is None:
            self.now = recorded_at(self.fixtures)
        self.app = Starlette(
            routes=[
                Route("/{tenant}/v2.0/.well-known/openid-configuration", self._openid),
                Route("/{tenant}/oauth2/v2.0/token", self._token, methods=["POST"]),
                Route(GRAPH_PREFIX + "/{version}/{collection:path}", self._graph_page),
                Route(
                    MANAGEMENT_PREFIX + "/api/v1.0/{tenant}/activity/feed/subscriptions/{action}",
                    self._subscriptions,
                    methods=["GET", "POST"],
                ),
                Route(
                    MANAGEMENT_PREFIX + "/api/v1.0/{tenant}/activity/feed/audit/{content_id}",
                    self._blob,
                ),
            ]
        )

    # --- what a client points its settings at ---

    @property
    def graph_base_url(self) -> str:
        return self.base_url + GRAPH_PREFIX

    @property
    def management_api_base_url(self) -> str:
        return self.base_url + MANAGEMENT_PREFIX

    def inject(self, fault: Fault) -> None:
        self.faults.append(fault)

    def hits(self, path_contains: str) -> list[SeenRequest]:
        return [r for r in self.requests if path_contains in r.path]

    # --- plumbing ---

    def _record(self, request: Request) -> None:
        self.requests.append(
            SeenRequest(
                request.method,
                request.url.path,
                dict(request.query_params),
                "authorization" in request.headers,
            )
        )

    def _fault_for(self, request: Request) -> Fault | None:
        target = request.url.path + "?" + request.url.query
        for fault in self.faults:
            if fault.times > 0 and fault.match in target:
                fault.times -= 1
                return fault
        return None

    def _check_bearer(self, request: Request, scope: str) -> Response | None:
        """None when the request may proceed; else the answer the real service would give."""
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip()
        issued = self._tokens.get(token)
        graph = scope.startswith(self.graph_base_url)
        if issued is None or issued[0] != scope or token in self._revoked:
            if graph:
                message = (
                    "Lifetime validation failed, the token is expired."
                    if token in self._revoked
                    else "Access token validation failure. Invalid audience."
                )
                return _graph_error(401, "InvalidAuthenticationToken", message)
            return _management_error(401, "AF10001", "Authorization token is missing or invalid.")
        if not issued[1]:
            if graph:
                return _graph_error(
                    403,
                    "Authorization_RequestDenied",
                    "Insufficient privileges to complete the operation.",
                )
            return _management_error(
                401,
                "AF10001",
                "The permission set () sent in the request does not include the expected "
                "permission ActivityFeed.Read.",
            )
        return None

    def _before(self, request: Request, scope: str | None) -> Response | None:
        self._record(request)
        fault = self._fault_for(request)
        if fault is not None and fault.kind == "expired_token":
            token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            self._revoked.add(token)
        elif fault is not None and fault.kind == "garbage":
            return Response(b"<html>upstream error</html>", media_type="application/json")
        elif fault is not None:
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            return JSONResponse(
                {"error": {"code": "injected", "message": f"injected HTTP {fault.status}"}},
                status_code=fault.status,
                headers=headers,
            )
        return self._check_bearer(request, scope) if scope else None

    # --- Entra ID ---

    async def _openid(self, request: Request) -> Response:
        self._record(request)
        tenant = request.path_params["tenant"]
        if tenant != self.tenant_id:
            return JSONResponse(
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found.",
                },
                status_code=400,
            )
        root = f"{self.base_url}/{tenant}"
        return JSONResponse(
            {
                "issuer": f"{root}/v2.0",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "jwks_uri": f"{self.base_url}/{tenant}/discovery/v2.0/keys",
                "response_types_supported": ["code", "token"],
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
            }
        )

    async def _token(self, request: Request) -> Response:
        refused = self._before(request, None)
        if refused is not None:
            return refused
        form = await request.form()
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "AADSTS70003: grant not supported.")
        if form.get("client_id") != self.client_id:
            return _oauth_error(
                400,
                "unauthorized_client",
                f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not "
                f"found in the directory '{self.tenant_id}'.",
            )
        if form.get("client_secret") != self.client_secret:
            return _oauth_error(
                401,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in "
                "the request is the client secret value, not the client secret ID.",
            )
        scope = str(form.get("scope", ""))
        resource = next((s for s in scope.split() if s.endswith("/.default")), "")
        if resource not in (
            f"{self.graph_base_url}/.default",
            f"{self.management_api_base_url}/.default",
        ):
            return _oauth_error(
                400,
                "invalid_resource",
                f"AADSTS500011: The resource principal named {resource} was not found.",
            )
        audience = resource.removesuffix("/.default")
        token = f"fake-{next(self._serial)}-{audience.rsplit('/', 1)[-1]}"
        self._tokens[token] = (audience, resource not in self.unpermitted_scopes)
        self.tokens_issued += 1
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime_s,
                "ext_expires_in": self.token_lifetime_s,
                "access_token": token,
            }
        )

    # --- Graph ---

    async def _graph_page(self, request: Request) -> Response:
        refused = self._before(request, self.graph_base_url)
        if refused is not None:
            return refused
        version, collection = request.path_params["version"], request.path_params["collection"]
        records = self._graph.get(collection)
        if records is None or version not in GRAPH_VERSIONS:
            segment = collection if version in GRAPH_VERSIONS else version
            return _graph_error(
                400, "BadRequest", f"Resource not found for the segment '{segment}'."
            )
        paging = GRAPH_SOURCES[collection].collection
        assert isinstance(paging, GraphPaging)
        query = request.query_params
        if "$skiptoken" in query:
            state = orjson.loads(base64.urlsafe_b64decode(query["$skiptoken"].encode()))
        else:
            state = {"o": 0, "f": query.get("$filter", ""), "t": int(query.get("$top", "100"))}
        try:
            selected = _graph_filter(records, state["f"], paging)
        except ValueError as error:
            return _graph_error(400, "BadRequest", f"Invalid filter clause: {error}")
        size = max(1, min(int(state["t"]), self.graph_page_size))
        offset = int(state["o"])
        body: dict[str, Any] = {
            "@odata.context": f"{self.graph_base_url}/{version}/$metadata#{collection}",
            "value": selected[offset : offset + size],
        }
        if offset + size < len(selected):
            token = base64.urlsafe_b64encode(orjson.dumps({**state, "o": offset + size})).decode()
            link_base = self.graph_next_link_base or self.graph_base_url
            body["@odata.nextLink"] = f"{link_base}/{version}/{collection}?$skiptoken={token}"
        return JSONResponse(body)

    # --- Management Activity API ---

    def _management_tenant_ok(self, request: Request) -> Response | None:
        if request.path_params["tenant"] != self.tenant_id:
            return _management_error(400, "AF50005", "Tenant is not known to the feed.")
        return None

    async def _subscriptions(self, request: Request) -> Response:
        refused = self._before(request, self.management_api_base_url)
        refused = refused or self._management_tenant_ok(request)
        if refused is not None:
            return refused
        action = request.path_params["action"]
        content_type = request.query_params.get("contentType", "")
        if action == "list" and request.method == "GET":
            return JSONResponse(
                [
                    {"contentType": t, "status": "enabled", "webhook": None}
                    for t in sorted(self.enabled_subscriptions)
                ]
            )
        if action == "start" and request.method == "POST":
            if content_type not in CONTENT_TYPES:
                return _management_error(400, "AF20023", "The specified content type is not valid.")
            if content_type in self.enabled_subscriptions:
                return _management_error(
                    400, "AF20024", "The subscription is already enabled. No property change."
                )
            self.enabled_subscriptions.add(content_type)
            return JSONResponse({"contentType": content_type, "status": "enabled", "webhook": None})
        if action == "content" and request.method == "GET":
            return self._content_page(request, content_type)
        return _management_error(404, "AF20000", "Not found.")

    def _content_page(self, request: Request, content_type: str) -> Response:
        if content_type not in self.enabled_subscriptions:
            return _management_error(
                400, "AF20022", "No subscription found for the specified content type"
            )
        query = request.query_params
        try:
            start = _parse_time(query["startTime"])
            end = _parse_time(query["endTime"])
        except (KeyError, ValueError):
            return _management_error(
                400,
                "AF20055",
                "Start time and end time must both be "
                "specified (or both omitted) and be valid date-times.",
            )
        now = self.now or datetime.now(UTC)
        if end <= start or end - start > timedelta(hours=24) or start < now - timedelta(days=7):
            return _management_error(
                400,
                "AF20055",
                "Start time and end time must both be specified (or both omitted) and must be "
                "less than or equal to 24 hours apart, with the start time no more than 7 days "
                "in the past.",
            )
        matching = [
            {**c, "contentUri": self._content_uri(c["contentId"])}
            for c in self._content
            if c.get("contentType") == content_type
            and start <= _parse_time(c["contentCreated"]) < end
        ]
        offset = int(query.get("nextPage", "0") or 0)
        page = matching[offset : offset + self.content_page_size]
        headers = {}
        if offset + self.content_page_size < len(matching):
            params = {**dict(query), "nextPage": str(offset + self.content_page_size)}
            params.pop("PublisherIdentifier", None)  # drill: the client must add it back itself
            headers["NextPageUri"] = str(request.url.replace_query_params(**params))
        return JSONResponse(page, headers=headers)

    def _content_uri(self, content_id: str) -> str:
        return (
            f"{self.management_api_base_url}/api/v1.0/{self.tenant_id}/activity/feed/audit/"
            f"{content_id}"
        )

    async def _blob(self, request: Request) -> Response:
        refused = self._before(request, self.management_api_base_url)
        refused = refused or self._management_tenant_ok(request)
        if refused is not None:
            return refused
        blob = self._blobs.get(request.path_params["content_id"])
        if blob is None:
            return _management_error(
                404, "AF20051", "Content requested with the key does not exist."
            )
        return JSONResponse(blob)


def recorded_at(fixtures: Path) -> datetime:
    """When the saved answers were 'recorded': one hour after the newest timestamp they contain.

    The fake's clock stands there (and a demo collects as of then), so the 7-day and 30-day history
    limits apply to the samples as they did when Microsoft answered.
    """
    newest = datetime(2000, 1, 1, tzinfo=UTC)
    for spec in GRAPH_SOURCES.values():
        time_field = spec.record_time_field
        for record in graph_sample_records(spec, fixtures):
            if isinstance(record, dict) and isinstance(record.get(time_field), str):
                newest = max(newest, _parse_time(record[time_field]))
    for spec in FEED_SOURCES:
        for content in feed_sample(spec, fixtures).content_list:
            newest = max(newest, _parse_time(content["contentCreated"]))
    return newest.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def _graph_filter(records: list[Any], expression: str, paging: GraphPaging) -> list[Any]:
    """The records a Graph `$filter` keeps: `<time field> ge|le <time>` bounds joined by `and`,
    and `field/any(t: t eq 'a' or …)` on a collection field (else the collection's implicit one)."""
    bounds = _TIME_BOUND.findall(expression)
    lambdas = _ANY.findall(expression)
    if expression and not (bounds or lambdas):
        raise ValueError(expression)
    start = end = None
    for field_name, operator, value in bounds:
        if field_name != paging.time_field:
            raise ValueError(f"{field_name} is not filterable here")
        moment = _parse_time(value)
        start, end = (moment, end) if operator == "ge" else (start, moment)
    wanted: list[tuple[str, set[str]]] = [
        (field_name, set(re.findall(rf"{variable} eq '([^']*)'", body)))
        for field_name, variable, body in lambdas
    ]
    if not wanted and paging.implicit_filter is not None:
        field_name, values = paging.implicit_filter
        wanted = [(field_name, set(values))]
    kept = []
    for record in records:
        moment = _parse_time(record[paging.time_field])
        if (start is not None and moment < start) or (end is not None and moment > end):
            continue
        if all(_any_of(record, field_name, values) for field_name, values in wanted):
            kept.append(record)
    return kept


def _any_of(record: dict[str, Any], field_name: str, values: set[str]) -> bool:
    """Whether the record's collection field holds one of `values` (a record without the field,
    as v1.0 answers have, counts as matching: the stand-in cannot tell)."""
    found = record.get(field_name)
    if not isinstance(found, list):
        return True
    return any(item in values for item in found)


def _parse_time(value: str) -> datetime:
    text = value.strip().replace("Z", "+00:00")
    # Graph sends 7 fractional digits; Python reads at most 6.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _graph_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _management_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": f"{description}\r\nTrace ID: fake\r\n"},
        status_code=status,
    )
