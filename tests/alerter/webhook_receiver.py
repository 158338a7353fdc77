"""A real HTTP receiver on 127.0.0.1 (uvicorn, free port) standing in for a Teams / Slack webhook.

It records every request body and can be told to answer the next requests with given statuses
(500, 429 with Retry-After…) before it accepts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


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


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield  # the test process keeps its signals


@contextlib.asynccontextmanager
async def running_receiver(path: str = "/hooks/T000/B000/s3cr3t") -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    app = Starlette(routes=[Route(path, receiver._hook, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    receiver.url = f"http://127.0.0.1:{sock.getsockname()[1]}{path}"
    server = _Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                await task
            await asyncio.sleep(0.01)
        yield receiver
    finally:
        server.should_exit = True
        await task
        sock.close()
