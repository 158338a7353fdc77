"""`POST /api/ask`: a natural-language question, turned by a language model into a typed event query
(see aoc_api.ask_core for what is sent and how the answer is checked), run against the event store.

Off unless AI_FEATURES_ENABLED (then 404, as if the route did not exist). Reading only: a reader may
ask (aoc_api.auth lists the path among the read-only POSTs). The model gets no tool that writes and
never sees audit data. The OpenAI client retries 408/429/5xx and timeouts itself (LLM_MAX_RETRIES,
exponential backoff with jitter, honouring Retry-After), each attempt bounded by LLM_TIMEOUT_SECONDS.
"""

from __future__ import annotations

from typing import Any

import openai
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from aoc_api.ask_core import (
    TOOL_NAME,
    AskAnswer,
    AskRequest,
    UnacceptableModelAnswer,
    ask_messages,
    query_from_model_arguments,
    search_tool,
    summarize,
)
from aoc_api.dependencies import ReaderDep, SettingsDep
from aoc_api.problems import problem
from aoc_common.events import utc_now
from aoc_common.logging import get_logger
from aoc_common.settings import Settings

router = APIRouter(prefix="/api", tags=["ask"])
log = get_logger(__name__)
LLM_MAX_RETRIES = 2
ASK_PATH = "/api/ask"


class ModelUnavailable(Exception):
    """The language model could not be asked (answered 502/503/504 with this message)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def llm_client(request: Request) -> openai.AsyncOpenAI:
    """One client (and connection pool) per app, made on first use."""
    client: openai.AsyncOpenAI | None = getattr(request.app.state, "llm_client", None)
    if client is None:
        settings: Settings = request.app.state.settings
        if settings.llm_api_key is None:
            raise ModelUnavailable(503, "LLM_API_KEY is not set: questions cannot be answered")
        client = openai.AsyncOpenAI(
            api_key=settings.llm_api_key.get_secret_value(),
            base_url=settings.llm_base_url,
            timeout=settings.llm_timeout_seconds,
            max_retries=LLM_MAX_RETRIES,
        )
        request.app.state.llm_client = client
    return client


async def model_arguments(client: openai.AsyncOpenAI, model: str, messages: Any) -> str | None:
    """The arguments of the model's `search_events` call (or its JSON reply, for models that
    answer in content instead of calling), None when it did neither."""
    try:
        completion = await client.chat.completions.create(
            model=model,
            messages=messages,
            tools=[search_tool()],
            tool_choice={"type": "function", "function": {"name": TOOL_NAME}},
            temperature=0,
        )
    except openai.APITimeoutError:
        raise ModelUnavailable(504, "The language model did not answer in time.") from None
    except openai.APIStatusError as error:
        raise ModelUnavailable(
            502, f"The language model answered HTTP {error.status_code}."
        ) from None
    except openai.APIConnectionError:
        raise ModelUnavailable(502, "The language model could not be reached.") from None
    except (openai.OpenAIError, ValueError):
        raise ModelUnavailable(502, "The language model's answer could not be read.") from None
    choices = getattr(completion, "choices", None) or []
    if not choices:
        return None
    message = choices[0].message
    for call in message.tool_calls or []:
        function = getattr(call, "function", None)
        if function is not None and function.name == TOOL_NAME:
            arguments: str | None = function.arguments
            return arguments
    return message.content


@router.post(
    "/ask",
    response_model=AskAnswer,
    summary="Ask a question in plain language; answers with the query used and the events found",
    responses={
        404: {"description": "AI_FEATURES_ENABLED is off"},
        502: {"description": "The language model failed or answered with an unusable query"},
        503: {"description": "No LLM_API_KEY configured, or the event store is unavailable"},
        504: {"description": "The language model did not answer within LLM_TIMEOUT_SECONDS"},
    },
)
async def ask(
    body: AskRequest,
    request: Request,
    store: ReaderDep,
    settings: SettingsDep,
) -> AskAnswer | JSONResponse:
    if not settings.ai_features_enabled:
        return problem(404, "Not found", "Questions are off (AI_FEATURES_ENABLED=false).")
    now = utc_now()
    try:
        client = llm_client(request)
        options = await store.filter_options()
        arguments = await model_arguments(
            client, settings.llm_model, ask_messages(body.question, options, now)
        )
        query = query_from_model_arguments(arguments, now)
    except ModelUnavailable as error:
        log.warning("ask_model_unavailable", status=error.status, problem=str(error))
        return problem(error.status, "Language model unavailable", str(error))
    except UnacceptableModelAnswer as error:
        log.warning("ask_model_answer_refused", problem=str(error))
        return problem(
            502, "Unusable answer from the language model", str(error), errors=error.errors
        )
    page = await store.query_events(query)
    log.info("ask_answered", question_length=len(body.question), events=len(page.items))
    return AskAnswer(
        question=body.question,
        query=query,
        events=page.items,
        next_cursor=page.next_cursor,
        answer=summarize(page.items, more=page.next_cursor is not None),
    )
