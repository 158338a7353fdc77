"""The FastAPI application: REST API, the web UI's static files, health and metrics.

The API reads the event store and never the message log's topics (the log is only pinged for /health).
`create_app` takes already-open engines (the demo and tests share them) or opens them from settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from aoc_api.problems import install_problem_handlers
from aoc_api.routes import events, system
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
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'"
    ),
}


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
        description="Microsoft 365 admin audit events: search, health and metrics.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.message_log = message_log
    install_problem_handlers(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
    )

    @app.middleware("http")
    async def _headers_and_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        return response

    app.include_router(system.router)
    app.include_router(events.router)
    app.include_router(sources_router)
    app.mount("/", StaticFiles(directory=static_dir(), html=True), name="ui")
    return app
