"""`POST /api/events/{id}/explain`: a short, security-minded explanation of one event by the
language model, every fact citing the event's own fields (aoc_api.explain_core says what the model
is given: this event only, secrets masked, size-bounded).

A POST because it spends a model call (never cached by a browser or proxy), yet it only reads:
a reader may explain (aoc_api.auth). 404 when AI_FEATURES_ENABLED or AI_SEND_EVENT_FIELDS is off.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from aoc_api.ai_http import AI_RESPONSES, AssistantDep, CallerDep, refusal_problem
from aoc_api.assistant import AssistantRefusal
from aoc_api.explain_core import Explanation

router = APIRouter(prefix="/api/events", tags=["ask"])


@router.post(
    "/{event_id}/explain",
    response_model=Explanation,
    summary="Explain one event for a security analyst, citing its fields",
    responses={**AI_RESPONSES, 404: {"description": "No such event, or explaining is off"}},
)
async def explain_event(
    event_id: Annotated[str, Path(min_length=1, max_length=200)],
    assistant: AssistantDep,
    caller: CallerDep,
) -> Explanation | JSONResponse:
    try:
        return await assistant.explain(event_id, caller)
    except AssistantRefusal as refusal:
        return refusal_problem(refusal)
