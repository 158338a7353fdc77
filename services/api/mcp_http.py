"""MCP over HTTP, mounted in the API: the tools of aoc_api.mcp_server for assistants that reach a
remote AOC, behind the API's own sign-in.

- `/mcp`: the streamable HTTP transport (POST messages, GET the server's stream, DELETE the
  session), as current MCP clients speak it.
- `/mcp/sse` + `/mcp/messages/?session_id=…`: the SSE transport, for clients that only speak it.

Every request carries the same bearer token as `/api/*` and is checked the same way
(aoc_api.auth): no or a bad token is a 401 problem, a token without a reader's role or group a 403
problem. The MCP SDK binds each session to the principal that opened it (another token's holder
gets 404 for it), and a session never outlives the token that opened it: a stream is cut when
that token expires, and a streamable HTTP session is ended then (a request on it answers 404,
which tells the client to sign in again and start a new one). With sign-in off, as `/api/*`, MCP
is open to whoever reaches the API; on a loopback API_HOST the SDK's DNS-rebinding protection
then only admits localhost Host headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import anyio
from fastapi import HTTPException
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aoc_api.ai_http import budget_key
from aoc_api.auth import Principal, current_principal, read_denial
from aoc_api.problems import problem
from aoc_common.logging import get_logger
from aoc_common.settings import Settings

log = get_logger(__name__)

MCP_PATH = "/mcp"
SSE_PATH = "/sse"  # under MCP_PATH
MESSAGES_PATH = "/messages/"  # under MCP_PATH
SESSION_HEADER = "mcp-session-id"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
TITLES = {401: "Unauthorized", 403: "Forbidden", 404: "Not found", 503: "Unavailable"}


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection where a browser page could otherwise reach an open local API
    (sign-in off, loopback host); a bearer token protects the rest."""
    if settings.auth_enabled or settings.api_host not in LOOPBACK_HOSTS:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )


def mcp_user(principal: Principal, settings: Settings) -> AuthenticatedUser:
    """The principal as the MCP SDK identifies a session's owner (client, issuer, subject). The
    token itself is not kept."""
    return AuthenticatedUser(
        AccessToken(
            token="",
            client_id=settings.auth_client_id or "aoc",
            scopes=list(principal.roles),
            expires_at=int(principal.expires_at) if principal.expires_at else None,
            subject=principal.object_id or principal.name,
            claims={"iss": principal.tenant_id},
        )
    )


class SessionDeadlines:
    """When each streamable HTTP session must end (its opening token's expiry), and the timers
    that end it then."""

    def __init__(self) -> None:
        self._deadlines: dict[str, float] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}

    def expired(self, session_id: str) -> bool:
        deadline = self._deadlines.get(session_id)
        return deadline is not None and time.time() >= deadline

    def opened(self, session_id: str, deadline: float, end: Callable[[], Awaitable[None]]) -> None:
        self._deadlines[session_id] = deadline

        async def end_at_deadline() -> None:
            await asyncio.sleep(max(0.0, deadline - time.time()))
            log.info("mcp_session_ended_with_its_token")
            with contextlib.suppress(Exception):
                await end()
            self._timers.pop(session_id, None)

        self._timers[session_id] = asyncio.create_task(end_at_deadline())

    def closed(self, session_id: str) -> None:
        self._deadlines.pop(session_id, None)
        timer = self._timers.pop(session_id, None)
        if timer is not None:
            timer.cancel()

    async def cancel_all(self) -> None:
        timers = list(self._timers.values())
        for timer in timers:
            timer.cancel()
        await asyncio.gather(*timers, return_exceptions=True)
        self._timers.clear()
        self._deadlines.clear()


async def _send_problem(
    send: Send, scope: Scope, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    response = problem(status, TITLES.get(status, "Error"), detail)
    response.headers.update(headers or {})
    await response(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class OpenStreams:
    """The requests being served, so that a shutting-down API can end its open streams at once
    instead of waiting for clients that never hang up."""

    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self.ending = False

    @contextlib.contextmanager
    def serving(self, deadline: float | None) -> Iterator[anyio.CancelScope]:
        scope = anyio.CancelScope(
            deadline=anyio.current_time() + (deadline - time.time()) if deadline else math.inf
        )
        if self.ending:
            scope.cancel()
        self._scopes.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._scopes.discard(scope)

    def end_all(self) -> None:
        self.ending = True
        for scope in list(self._scopes):
            scope.cancel()


class SignedInMcp:
    """ASGI wrapper of an MCP transport: the API's sign-in, the caller's identity for the SDK and
    the tools, and the token's expiry as the deadline of everything the request opens."""

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        streams: OpenStreams,
        sessions: StreamableHTTPSessionManager | None = None,
        deadlines: SessionDeadlines | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.streams = streams
        self.sessions = sessions
        self.deadlines = deadlines

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            principal = await current_principal(request)
        except HTTPException as error:
            await _send_problem(send, scope, error.status_code, str(error.detail), error.headers)
            return
        if principal.expires_at is not None and principal.expires_at <= time.time():
            # Inside the clock-skew leeway the API accepts, but nothing opened here may
            # outlive the token: the client signs in again.
            await _send_problem(send, scope, 401, "token has expired", UNAUTHORIZED_HEADERS)
            return
        denial = read_denial(principal, self.settings)
        if denial is not None:
            await _send_problem(send, scope, 403, denial)
            return
        scope.setdefault("state", {})["ai_budget_key"] = budget_key(
            principal, request.client.host if request.client else None
        )
        if principal.authenticated:
            scope["user"] = mcp_user(principal, self.settings)
        session_id = request.headers.get(SESSION_HEADER)
        if self.deadlines is not None and session_id is not None:
            if self.deadlines.expired(session_id):
                await _send_problem(send, scope, 404, "The MCP session ended with its token.")
                return
            if scope["method"] == "DELETE":
                self.deadlines.closed(session_id)
        await self._serve_until(principal.expires_at, scope, receive, send)

    async def _serve_until(
        self, deadline: float | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        started = finished = False
        opened_session: str | None = None

        async def watched(message: Message) -> None:
            nonlocal started, finished, opened_session
            if finished or (started and message["type"] == "http.response.start"):
                # The SDK's SSE endpoint answers an empty response after its stream has ended
                # (the client left): a second response on a finished one. Nothing to send.
                return
            if message["type"] == "http.response.start":
                started = True
                for name, value in message.get("headers", []):
                    if name.decode("latin-1").lower() == SESSION_HEADER:
                        opened_session = value.decode("latin-1")
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        with self.streams.serving(deadline) as cut:
            await self.app(scope, receive, watched)
            if deadline and opened_session is not None and not _has_session_header(scope):
                self._end_at(opened_session, deadline, scope)
        if cut.cancelled_caught:
            if not started:
                await _send_problem(send, scope, 401, "token has expired", UNAUTHORIZED_HEADERS)
            elif not finished:
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _end_at(self, session_id: str, deadline: float, scope: Scope) -> None:
        if self.sessions is None or self.deadlines is None:
            return
        sessions, user = self.sessions, scope.get("user")
        host = next((v for k, v in scope["headers"] if k == b"host"), b"localhost")

        async def end() -> None:
            # A DELETE from the session's owner: the SDK's own way to end a session.
            await sessions.handle_request(
                {
                    "type": "http",
                    "asgi": {"version": "3.0"},
                    "http_version": "1.1",
                    "method": "DELETE",
                    "scheme": "http",
                    "path": MCP_PATH,
                    "raw_path": MCP_PATH.encode(),
                    "root_path": "",
                    "query_string": b"",
                    "headers": [(SESSION_HEADER.encode(), session_id.encode()), (b"host", host)],
                    "client": None,
                    "server": None,
                    "user": user,
                    "state": {},
                },
                _no_body,
                _discard,
            )

        self.deadlines.opened(session_id, deadline, end)


def _has_session_header(scope: Scope) -> bool:
    return any(name == SESSION_HEADER.encode() for name, _ in scope["headers"])


async def _discard(message: Message) -> None:
    return None


class McpOverHttp:
    """The MCP server's two HTTP transports, signed in. Made in the API's lifespan (building the
    tools' argument models takes a noticeable fraction of a second, which an app that never
    serves MCP should not pay), whose `running()` runs the streamable HTTP sessions."""

    def __init__(self, server: MCPServer, settings: Settings) -> None:
        security = transport_security(settings)
        server.streamable_http_app(transport_security=security)  # makes the session manager
        self.sessions = server.session_manager
        self.deadlines = SessionDeadlines()
        self.streams = OpenStreams()
        sse = server.sse_app(
            sse_path=SSE_PATH, message_path=MESSAGES_PATH, transport_security=security
        )
        self.streamable_app = SignedInMcp(
            self.sessions.handle_request, settings, self.streams, self.sessions, self.deadlines
        )
        self.sse_app = SignedInMcp(sse, settings, self.streams)

    def end_streams(self) -> None:
        """End every open MCP stream now (the API is stopping): clients reconnect elsewhere or
        later, and the shutdown does not wait on them."""
        self.streams.end_all()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.sessions.run():
            try:
                yield
            finally:
                await self.deadlines.cancel_all()


class _Mounted:
    """Hands a request to the app's MCP transport (`app.state.mcp`), or answers 503 while the
    API's lifespan has not made it."""

    def __init__(self, transport: str) -> None:
        self.transport = transport

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        mcp: McpOverHttp | None = getattr(scope["app"].state, "mcp", None)
        if mcp is None:
            await _send_problem(send, scope, 503, "MCP is not running yet.")
            return
        await getattr(mcp, self.transport)(scope, receive, send)


def mcp_routes() -> list[BaseRoute]:
    """`/mcp` (streamable HTTP) and `/mcp/sse`, `/mcp/messages/` (SSE), for the API's router."""
    return [
        Route(MCP_PATH, endpoint=_Mounted("streamable_app"), methods=["GET", "POST", "DELETE"]),
        Mount(MCP_PATH, app=_Mounted("sse_app")),
    ]
