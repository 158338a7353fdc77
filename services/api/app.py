"""The FastAPI application: REST API, the web UI's static files, health and metrics.

The API reads the event store and never the message log's topics (the log is only pinged for /health).
`create_app` takes already-open engines (the demo and tests share them) or opens them from settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from aoc_api.auth import add_bearer_security, guard_api_request
from aoc_api.problems import document_problems, install_problem_handlers
from aoc_api.request_size import RequestSizeLimit
from aoc_api.routes import alert_triage, config, events, export, facets, system
from aoc_api.routes import alerts as alert_routes
from aoc_api.routes import rules as rule_routes
from aoc_api.routes.ask import router as ask_router
from aoc_api.routes.sources import router as sources_router
from aoc_common import __version__
from aoc_common.event_store import EventStore, open_event_store
from aoc_common.message_log import MessageLog, open_message_log
from aoc_common.metrics import HTTP_REQUESTS
from aoc_common.settings import Settings

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def content_security_policy(settings: Settings) -> str:
    """Only our own files run; with sign-in on, MSAL.js may also talk to (and frame) the
    authority, for token requests and silent renewal."""
    authority = f" {settings.authority_host}" if settings.auth_enabled else ""
    return (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        f"connect-src 'self'{authority}; frame-src 'self'{authority}; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
    )


def static_dir() -> Path:
    return Path(str(files("aoc_ui")))


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
        try:
            yield
        finally:
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
        docs_url=None,  # served by routes/system.py from vendored files, without a CDN
        redoc_url=None,
        # Every /api/* route needs a reader (a writer to change anything) when AUTH_ENABLED is on,
        # including the routes other modules add; see aoc_api.auth.
        dependencies=[Depends(guard_api_request)],
    )
    app.state.settings = settings
    app.state.store = store
    app.state.message_log = message_log
    install_problem_handlers(app)
    app.add_middleware(RequestSizeLimit)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
    )

    security_headers = {
        **SECURITY_HEADERS,
        "Content-Security-Policy": content_security_policy(settings),
    }

    @app.middleware("http")
    async def _headers_and_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.update(security_headers)
        if request.url.path.startswith("/api/") or request.url.path == "/health":
            # Audit events are sensitive: no browser or proxy keeps a copy.
            response.headers.setdefault("Cache-Control", "no-store")
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        return response

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
    app.mount("/", StaticFiles(directory=static_dir(), html=True), name="ui")
    _document_errors_and_security(app, settings)
    return app


def _document_errors_and_security(app: FastAPI, settings: Settings) -> None:
    """OpenAPI then shows problem+json errors, and (with sign-in on) which operations need a
    token, as the running API behaves."""
    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = document_problems(plain_openapi())
            app.openapi_schema = add_bearer_security(schema) if settings.auth_enabled else schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
