"""How the REST routes reach the AI features: the app's one `Assistant`, the key of the caller's
rate budget, and an `AssistantRefusal` as a problem+json response (429 with `Retry-After`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from aoc_api.assistant import Assistant, AssistantRefusal
from aoc_api.auth import Principal, current_principal
from aoc_api.problems import problem

# The statuses every AI route may answer, for its OpenAPI document.
AI_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "AI_FEATURES_ENABLED is off"},
    429: {"description": "Over the caller's AI_REQUESTS_PER_MINUTE (Retry-After says when)"},
    502: {"description": "The language model failed or answered unusably"},
    503: {"description": "No LLM_API_KEY configured, or the event store is unavailable"},
    504: {"description": "The language model did not answer within LLM_TIMEOUT_SECONDS"},
}


def get_assistant(request: Request) -> Assistant:
    assistant: Assistant = request.app.state.assistant
    return assistant


def budget_key(principal: Principal, client_host: str | None) -> str:
    """Whose budget a request spends: the signed-in user (object id, else name), or without
    sign-in the client's address (every anonymous caller is not one user)."""
    if principal.authenticated:
        return f"user:{principal.object_id or principal.name}"
    return f"client:{client_host or 'unknown'}"


async def caller_budget_key(request: Request) -> str:
    principal = await current_principal(request)
    return budget_key(principal, request.client.host if request.client else None)


AssistantDep = Annotated[Assistant, Depends(get_assistant)]
CallerDep = Annotated[str, Depends(caller_budget_key)]


def refusal_problem(refusal: AssistantRefusal) -> JSONResponse:
    extra = {"errors": refusal.errors} if refusal.errors else {}
    response = problem(refusal.status, refusal.title, refusal.detail, **extra)
    if refusal.retry_after_s is not None:
        response.headers["Retry-After"] = str(refusal.retry_after_s)
    return response
