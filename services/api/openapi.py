"""The OpenAPI document as the running API behaves: every status an operation can answer, every
error as problem+json, and (with sign-in on) which operations need a token.

Statuses that follow from an operation's shape are added by rule, so a route added later is
documented the same way: parameters or a body → 422, a body → 400 (not JSON) and 413, an id in
the path → 404, and a protected operation with sign-in on → 401, 403 and 503 (signing keys
unavailable). What only the route knows it declares itself: the routers that use the store
declare `STORE_RESPONSES` (503), routes that call another service their 502/503.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from aoc_api.auth import add_bearer_security, is_protected
from aoc_api.problems import document_problems
from aoc_common.settings import Settings

# For routers whose routes read or write the event store.
STORE_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"description": "The event store is unavailable, or refuses writes (read-only)"}
}
BODY_METHODS = frozenset({"post", "put", "patch"})


def shape_statuses(
    path: str, method: str, operation: dict[str, Any], settings: Settings
) -> dict[str, str]:
    """Error statuses that follow from the operation's shape, each with why."""
    statuses: dict[str, str] = {}
    if operation.get("parameters") or operation.get("requestBody"):
        statuses["422"] = "A parameter or the body is not valid; `errors` names each"
    if operation.get("requestBody"):
        statuses["400"] = "The body is not JSON"
    if operation.get("requestBody") or method in BODY_METHODS:
        statuses["413"] = "The body is larger than 1 MiB"
    if "{" in path:
        statuses["404"] = "No such item"
    if settings.auth_enabled and is_protected(method.upper(), path):
        statuses["401"] = "Missing or invalid bearer token"
        statuses["403"] = "Signed in without the needed role"
        statuses["503"] = "The tenant's signing keys cannot be fetched right now"
    return statuses


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Replace `app.openapi` by a builder of the complete document (built once, then cached)."""
    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = plain_openapi()
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                for status, reason in shape_statuses(path, method, operation, settings).items():
                    if status in responses:
                        known = responses[status].get("description", "")
                        if reason not in known:
                            responses[status]["description"] = f"{known}; {reason}".strip("; ")
                    else:
                        responses[status] = {"description": reason}
        schema = document_problems(schema)
        app.openapi_schema = add_bearer_security(schema) if settings.auth_enabled else schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
