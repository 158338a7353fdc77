"""A real HTTP receiver on 127.0.0.1 (uvicorn, free port) standing in for a Teams / Slack webhook.

It records every request body and can be told to answer the next requests with given statuses
(500, 429 with Retry-After…) before it accepts again.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.utils.local_servers import serving_here


@dataclass
class WebhookReceiver:
    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    answer_first: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    def fail_next(self, *statuses: int, retry_after: str | None = None) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.answer_first += [(status, headers) for status in statuses]

    async def _hook(self, request: Request) -> Response:
        self.attempts += 1
        body = await request.body()
        if self.answer_first:
            status, headers = self.answer_first.pop(0)
            return JSONResponse({"error": "not now"}, status_code=status, headers=headers)
        self.received.append(orjson.loads(body))
        return Response("1", status_code=200)


@contextlib.asynccontextmanager
async def running_receiver(path: str = "/hooks/T000/B000/s3cr3t") -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    app = Starlette(routes=[Route(path, receiver._hook, methods=["POST"])])
    async with serving_here(app) as url:
        receiver.url = f"{url}{path}"
        yield receiver
