"""A local stand-in for Microsoft Graph's `POST /v1.0/directoryObjects/getByIds`, served by uvicorn on
127.0.0.1 (a free port), plus a token source with the EntraTokenProvider shape."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.utils.local_servers import serving_here


@dataclass
class FakeGraph:
    """Directory objects by id; `down` answers 503 to everything; `calls` records each batch of ids."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    down: bool = False
    expired_tokens: set[str] = field(default_factory=set)
    calls: list[list[str]] = field(default_factory=list)
    requests: int = 0  # every request, answered or not
    url: str = ""

    def add_user(self, object_id: str, name: str, upn: str) -> None:
        self.objects[object_id] = {
            "@odata.type": "#microsoft.graph.user",
            "id": object_id,
            "displayName": name,
            "userPrincipalName": upn,
        }

    def add(self, object_id: str, odata_type: str, name: str) -> None:
        self.objects[object_id] = {"@odata.type": odata_type, "id": object_id, "displayName": name}

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1.0/directoryObjects/getByIds")
        async def get_by_ids(request: Request) -> JSONResponse:
            self.requests += 1
            if self.down:
                return JSONResponse({"error": {"code": "ServiceUnavailable"}}, status_code=503)
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if not token or token in self.expired_tokens:
                return JSONResponse({"error": {"code": "InvalidAuthenticationToken"}}, 401)
            body = await request.json()
            ids = body["ids"]
            if len(ids) > 1000:
                return JSONResponse({"error": {"code": "Request_BadRequest"}}, status_code=400)
            self.calls.append(list(ids))
            found = [self.objects[i] for i in ids if i in self.objects]
            return JSONResponse({"@odata.context": "https://graph/$metadata", "value": found})

        return app


class FakeTokens:
    """Hands out `token-1`, `token-2`… ; `invalidate` makes the next call fetch a new one."""

    def __init__(self) -> None:
        self.issued = 0
        self.scopes: list[str] = []
        self._current: str | None = None

    async def token(self, scope: str) -> str:
        self.scopes.append(scope)
        if self._current is None:
            self.issued += 1
            self._current = f"token-{self.issued}"
        return self._current

    def invalidate(self, scope: str) -> None:
        self._current = None


@contextlib.asynccontextmanager
async def serving(graph: FakeGraph) -> AsyncIterator[FakeGraph]:
    """Serve `graph` until the block ends; `graph.url` is its base URL."""
    async with serving_here(graph.app()) as url:
        graph.url = url
        yield graph


def guid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def directory_record(record_id: str, *, actor_id: str, target_id: str) -> dict[str, Any]:
    """A directoryAudit in which Microsoft gave only ids (no names) for the actor and the target user."""
    return {
        "id": record_id,
        "category": "UserManagement",
        "result": "success",
        "activityDisplayName": "Update user",
        "activityDateTime": "2026-11-20T10:00:00Z",
        "loggedByService": "Core Directory",
        "initiatedBy": {"user": {"id": actor_id, "displayName": None, "userPrincipalName": None}},
        "targetResources": [
            {"id": target_id, "displayName": None, "type": "User", "userPrincipalName": None}
        ],
    }
