"""`POST /api/ask`: a natural-language question, answered within the analyst's active filters with
the events found and a narrative citing them (see aoc_api.ask_core for what the model is sent and
how its answers are checked, aoc_api.assistant for the limits).

Off unless AI_FEATURES_ENABLED (then 404, as if the route did not exist). Reading only: a reader may
ask (aoc_api.auth lists the path among the read-only POSTs). The model gets no tool that writes.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from aoc_api.ai_http import AI_RESPONSES, AssistantDep, CallerDep, refusal_problem
from aoc_api.ask_core import AskAnswer, AskRequest
from aoc_api.assistant import AssistantRefusal

router = APIRouter(prefix="/api", tags=["ask"])
ASK_PATH = "/api/ask"


@router.post(
    "/ask",
    response_model=AskAnswer,
    summary="Ask a question in plain language, within the active filters; answers with the query "
    "used, the events found and a narrative citing them",
    responses=AI_RESPONSES,
)
async def ask(
    body: AskRequest, assistant: AssistantDep, caller: CallerDep
) -> AskAnswer | JSONResponse:
    try:
        return await assistant.ask(body.question, body.filters, caller)
    except AssistantRefusal as refusal:
        return refusal_problem(refusal)
