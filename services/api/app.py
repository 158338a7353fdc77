"""The FastAPI application: REST API, the web UI's static files, health and metrics.

The API reads the event store and never the message log's topics (the log is only pinged for /health).
`create_app` takes already-open engines (the demo and tests share them) or opens them from settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.routing import Match, Mount
from starlette.types import Scope

from aoc_api.assistant import Assistant
from aoc_api.auth import TokenVerifier, guard_api_request
from aoc_api.mcp_http import McpOverHttp, mcp_routes
from aoc_api.mcp_server import build_mcp_server
from aoc_api.openapi import install_openapi
from aoc_api.problems import ContainUnexpectedErrors, install_problem_handlers
from aoc_api.request_size import RequestSizeLimit
from aoc_api.response_headers import ResponseHeadersAndMetrics
from aoc_api.routes import alert_triage, config, events, export, facets, system
from aoc_api.routes import alerts as alert_routes
from aoc_api.routes import rules as rule_routes
from aoc_api.routes.ask import router as ask_router
from aoc_api.routes.explain import router as explain_router
from aoc_api.routes.sources import router as sources_router
from aoc_common import __version__
from aoc_common.event_store import EventStore, open_event_store
from aoc_common.message_log import MessageLog, open_message_log
from aoc_common.settings import Settings

UI_METHODS = frozenset({"GET", "HEAD"})


def static_dir() -> Path:
    return Path(str(files("aoc_ui")))


class UiMount(Mount):
    """The web UI's files at `/`, behind the API: a path that an API route knows (with another
    method) or that lies under `/api/` is never answered by the file server, so a wrong method is
    the API's 405 with its `Allow`, and an unknown API path its 404 problem, not the UI's. Files
    are read with GET and HEAD; another method is a partial match (a 405, `Allow: GET, HEAD`)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "")
        if path == "/api" or path.startswith("/api/"):
            return Match.NONE, {}
        app = scope.get("app")
        routes = app.router.routes if isinstance(app, FastAPI) else []
        if any(route is not self and route.matches(scope)[0] != Match.NONE for route in routes):
            return Match.NONE, {}
        match, child_scope = super().matches(scope)
        if match == Match.FULL and scope.get("method") not in UI_METHODS:
            return Match.PARTIAL, child_scope
        return match, child_scope


def create_app(
    settings: Settings,
    *,
    store: EventStore | None = None,
    message_log: MessageLog | None = None,
) -> FastAPI:
    """Engines passed in are used as they are (their owner starts and stops them)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned: list[EventStore | MessageLog] = []
        if store is None:
            app.state.store = open_event_store(settings)
            owned.append(app.state.store)
        if message_log is None:
            app.state.message_log = open_message_log(settings, client_id="aoc-api")
            owned.append(app.state.message_log)
        for engine in owned:
            await engine.start()
        app.state.mcp = McpOverHttp(
            build_mcp_server(lambda: app.state.store, app.state.assistant), settings
        )
        try:
            async with app.state.mcp.running():
                yield
        finally:
            app.state.mcp = None
            await app.state.assistant.close()
            verifier: TokenVerifier | None = getattr(app.state, "token_verifier", None)
            if verifier is not None:
                await verifier.jwks.aclose()
            for engine in reversed(owned):
                await engine.stop()

    app = FastAPI(
        title="AOC — Admin Operations Center",
        version=__version__,
        description=(
            "Microsoft 365 admin audit events: search, tags and comments, events over time, "
            "health and metrics. Errors are RFC 9457 application/problem+json."
        ),
        lifespan=lifespan,
        # /docs and /openapi.json are served by routes/system.py: Swagger UI from vendored files
        # (no CDN), both behind sign-in unless PUBLIC_API_DOCS.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # Every /api/* route needs a reader (a writer to change anything) when AUTH_ENABLED is on,
        # including the routes other modules add; see aoc_api.auth.
        dependencies=[Depends(guard_api_request)],
    )
    app.state.settings = settings
    app.state.store = store
    app.state.message_log = message_log
    # The AI features and the MCP tools read the store the lifespan opens (or the one given).
    app.state.assistant = Assistant(settings, lambda: app.state.store)
    app.state.mcp = None  # MCP over HTTP, made in the lifespan
    install_problem_handlers(app)
    # Outermost last: headers and metrics see every answer, the 500 of ContainUnexpectedErrors too.
    app.add_middleware(RequestSizeLimit)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
    )
    app.add_middleware(ContainUnexpectedErrors)
    app.add_middleware(ResponseHeadersAndMetrics, settings=settings)

    app.include_router(system.router)
    # Before events.router: /api/events/{event_id} would otherwise take /api/events/count etc.
    app.include_router(facets.router)
    app.include_router(export.router)
    app.include_router(events.router)
    app.include_router(config.router)
    app.include_router(rule_routes.router)
    app.include_router(alert_triage.router)
    app.include_router(alert_routes.router)
    app.include_router(sources_router)
    app.include_router(ask_router)
    app.include_router(explain_router)
    app.router.routes.extend(mcp_routes())  # /mcp, /mcp/sse, /mcp/messages/ (aoc_api.mcp_http)

    def end_mcp_streams() -> None:
        if app.state.mcp is not None:
            app.state.mcp.end_streams()

    app.state.on_stop = [end_mcp_streams]  # called by aoc_api.server when the API stops
    app.router.routes.append(
        UiMount("/", app=StaticFiles(directory=static_dir(), html=True), name="ui")
    )
    install_openapi(app, settings)
    return app
