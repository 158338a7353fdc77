"""A fake OpenAI-compatible chat completions endpoint, served for real on 127.0.0.1, that answers from
a script: a tool call with given arguments, plain content, an HTTP error, or no answer at all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.utils.local_servers import serving

HANG_LIMIT_S = 10.0


@dataclass
class Reply:
    """One scripted answer. `arguments` is the tool call's JSON text; `status` other than 200 is an
    error; `hang` keeps the request open until the test ends (the client's timeout fires first)."""

    arguments: str | None = None
    content: str | None = None
    function: str = "search_events"
    status: int = 200
    hang: bool = False


def tool_call(**arguments: Any) -> Reply:
    return Reply(arguments=orjson.dumps(arguments).decode())


def function_call(function: str, arguments: dict[str, Any]) -> Reply:
    """A call of `function` (the narrative's `answer_question`, `explain_event`)."""
    return Reply(arguments=orjson.dumps(arguments).decode(), function=function)


@dataclass
class FakeLlm:
    url: str = ""
    script: list[Reply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    generation: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def completions(request: Request) -> JSONResponse:
            self.requests.append(await request.json())
            self.authorizations.append(request.headers.get("authorization"))
            reply = self.script.pop(0) if self.script else Reply(status=500)
            if reply.hang:
                # Until the next test (or the end): the client gives up long before.
                generation, deadline = self.generation, time.monotonic() + HANG_LIMIT_S
                while self.generation == generation and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
            if reply.status != 200:
                return JSONResponse(
                    {"error": {"message": "scripted failure", "type": "server_error"}},
                    status_code=reply.status,
                )
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if reply.arguments is not None:
                message["tool_calls"] = [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": reply.function, "arguments": reply.arguments},
                    }
                ]
            return JSONResponse(
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": 1_764_000_000,
                    "model": "fake-model",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "tool_calls" if reply.arguments else "stop",
                            "message": message,
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            )

        return app

    def reset(self, *replies: Reply) -> None:
        self.script, self.requests, self.authorizations = list(replies), [], []
        self.generation += 1


def fake_llm() -> Iterator[FakeLlm]:
    fake = FakeLlm()
    with serving(fake.app()) as url:
        fake.url = url
        try:
            yield fake
        finally:
            fake.generation += 1
