"""RFC 9457 problem+json for every error the API returns, so clients never see a traceback or HTML.

Validation errors name the offending parameter; a store that is down or refuses writes is a 503
saying which; a wrong method is a 405 whose `Allow` lists what the path does take (and `OPTIONS`
answers that list); unexpected errors are logged with their traceback and answered with a generic
500 problem that reveals nothing of the internals and closes the connection cleanly.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aoc_common.event_store.base import StoreError
from aoc_common.logging import get_logger

PROBLEM_JSON = "application/problem+json"
log = get_logger(__name__)
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Payload too large",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal error",
    502: "Bad gateway",
    503: "Service unavailable",
}
# Words in a store's error that mean "it answers, but will not take writes".
_READ_ONLY_SIGNS = ("readonly", "read-only", "read only", "not authorized", "notwritableprimary")


def problem(status: int, title: str, detail: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _location(loc: tuple[Any, ...]) -> str:
    # A repeated query parameter (`?source=a&source=b`) is still one parameter: name it, not
    # the position of the bad value in the list pydantic validated.
    in_query = bool(loc) and loc[0] == "query"
    parts = [
        str(p)
        for p in loc
        if p not in ("query", "body", "path") and not (in_query and isinstance(p, int))
    ]
    return ".".join(parts) or "request"


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "extra_forbidden":
        return "unknown parameter"
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def store_refuses_writes(error: BaseException) -> bool:
    text = str(error).lower().replace(" ", "")
    return any(sign.replace(" ", "") in text for sign in _READ_ONLY_SIGNS)


PROBED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """The methods some route takes at this path, for `Allow`: each is tried against the routes
    (a method no route takes at this path would itself be a 405 or 404)."""
    methods = [
        method
        for method in PROBED_METHODS
        if any(
            route.matches({**scope, "method": method})[0] == Match.FULL
            for route in app.router.routes
        )
    ]
    if "GET" in methods:
        methods.insert(1, "HEAD")
    return [*methods, "OPTIONS"]


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"parameter": _location(tuple(e.get("loc", ()))), "message": _message(e)}
            for e in error.errors()
        ]
        detail = "; ".join(f"{e['parameter']}: {e['message']}" for e in errors[:5])
        return problem(422, TITLES[422], detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 405:
            return _method_not_allowed(app, request)
        title = TITLES.get(error.status_code, "Error")
        detail = error.detail if isinstance(error.detail, str) else None
        response = problem(error.status_code, title, detail)
        for name, value in (error.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(StoreError)
    async def _store(request: Request, error: StoreError) -> JSONResponse:
        # The store's own message may name files or hosts: logged, not sent.
        log.warning("store_error", path=request.url.path, method=request.method, error=str(error))
        if store_refuses_writes(error):
            reason = "The event store refuses writes (it is read-only); reading still works."
        else:
            reason = "The event store is not available; try again."
        return problem(503, TITLES[503], reason)


def _method_not_allowed(app: FastAPI, request: Request) -> Response:
    """The router found the path but not the method. `OPTIONS` is answered here (no route
    declares it): 204 with the methods the path takes. Anything else is a 405 naming them."""
    allow = ", ".join(allowed_methods(app, request.scope))
    if request.method == "OPTIONS":
        return Response(status_code=204, headers={"Allow": allow})
    response = problem(405, TITLES[405], f"{request.method} is not allowed here; use {allow}")
    response.headers["Allow"] = allow
    return response


class ContainUnexpectedErrors:
    """Pure ASGI middleware: an exception no handler took becomes a 500 problem that closes the
    connection (`Connection: close`), instead of Starlette's re-raise, after which the server
    drops the connection without saying so. Logged with its traceback; the client learns nothing
    of the internals."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except Exception as error:
            log.error("unhandled error", path=scope.get("path"), exc_info=error)
            if started:  # half a response is out: only closing the connection is honest
                raise
            response = problem(500, TITLES[500], "The server could not complete the request.")
            response.headers["Connection"] = "close"
            await response(scope, receive, send)


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "example": "about:blank"},
        "title": {"type": "string", "example": "Invalid request"},
        "status": {"type": "integer", "example": 422},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "On 422: each invalid parameter and why",
            "items": {
                "type": "object",
                "properties": {"parameter": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Make an OpenAPI document say that every error response is application/problem+json."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    problem_content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for code, response in operation.get("responses", {}).items():
                if code[0] in "45":
                    response["content"] = problem_content
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema
