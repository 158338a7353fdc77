"""The AI features as one service, shared by the REST routes and the MCP tools: answering a question
(`ask`) and explaining an event (`explain`), over an event reader and a language model.

This is the shell around aoc_api.ask_core and aoc_api.explain_core: it reads the store, spends the
user's budget (aoc_api.rate_limit), calls the model (aoc_api.language_model) and turns every way
that can fail into an `AssistantRefusal` carrying the HTTP status and reason to answer — 404 off or
no such event, 429 over budget, 502 model error or unusable answer, 503 not configured, 504 no
answer in time — so neither REST nor MCP ever answers a model failure with a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from aoc_api.ask_core import (
    AskAnswer,
    FiltersConflict,
    ask_messages,
    checked_narrative,
    events_for_narrative,
    narrative_messages,
    narrative_tool,
    query_from_model_arguments,
    search_tool,
    summarize,
    within_filters,
)
from aoc_api.explain_core import (
    Explanation,
    checked_explanation,
    event_budget_chars,
    explain_messages,
    explain_tool,
)
from aoc_api.language_model import LanguageModel, ModelUnavailable
from aoc_api.model_input import estimated_tokens, event_for_model
from aoc_api.model_output import UnacceptableModelAnswer
from aoc_api.rate_limit import PerUserRateLimit, RateLimited
from aoc_common.event_store.base import EventReader
from aoc_common.events import utc_now
from aoc_common.logging import get_logger
from aoc_common.query import EventFilters, EventPage
from aoc_common.settings import Settings

log = get_logger(__name__)


class AssistantRefusal(Exception):
    """Why an AI request gets no answer: the status, title and detail of the problem to send."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        retry_after_s: int | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.retry_after_s = retry_after_s
        self.errors = errors or []


def _model_failed(error: ModelUnavailable | UnacceptableModelAnswer) -> AssistantRefusal:
    if isinstance(error, ModelUnavailable):
        return AssistantRefusal(error.status, "Language model unavailable", str(error))
    return AssistantRefusal(
        502, "Unusable answer from the language model", str(error), errors=error.errors
    )


class Assistant:
    """`ask` and `explain` for one API process (or one `aoc mcp`), each call on behalf of a user
    (the key of their rate budget)."""

    def __init__(
        self,
        settings: Settings,
        reader: Callable[[], EventReader],
        *,
        model: LanguageModel | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self._reader = reader
        self.model = model or LanguageModel(settings)
        self.budget = PerUserRateLimit(settings.ai_requests_per_minute)
        self._clock = clock

    def now(self) -> datetime:
        return self._clock()

    @property
    def explain_enabled(self) -> bool:
        return self.settings.ai_features_enabled and self.settings.ai_send_event_fields

    async def close(self) -> None:
        await self.model.close()

    def _check_on(self, feature: str) -> None:
        if not self.settings.ai_features_enabled:
            raise AssistantRefusal(
                404, "Not found", f"{feature} is off (AI_FEATURES_ENABLED=false)."
            )

    def _spend(self, user: str) -> None:
        try:
            self.budget.admit(user)
        except RateLimited as limited:
            log.info("ai_rate_limited", retry_after_s=limited.retry_after_s)
            raise AssistantRefusal(
                429,
                "Too many requests",
                f"At most {self.settings.ai_requests_per_minute} questions and explanations a "
                f"minute per user; try again in {limited.retry_after_s} s.",
                retry_after_s=limited.retry_after_s,
            ) from None

    async def ask(self, question: str, filters: EventFilters, user: str) -> AskAnswer:
        """The question answered within `filters`: the query the model built, its events, and a
        narrative (AI_SEND_EVENT_FIELDS on) or the computed summary."""
        self._check_on("Asking questions")
        self._spend(user)
        now = self.now()
        reader = self._reader()
        try:
            messages = ask_messages(
                question, await reader.filter_options(), now, self.settings.llm_max_prompt_tokens
            )
            asked = query_from_model_arguments(
                await self.model.call_function(messages, search_tool()), now
            )
        except (ModelUnavailable, UnacceptableModelAnswer) as error:
            log.warning("ask_model_failed", problem=str(error))
            raise _model_failed(error) from None
        try:
            query = within_filters(asked, filters)
        except FiltersConflict as conflict:
            return AskAnswer(
                question=question,
                query=asked,
                events=[],
                answer="No events: the question asks for events outside the active filters.",
                note=f"{conflict}. Clear those filters or ask within them.",
            )
        page = await reader.query_events(query)
        answer = await self._answer(question, query, page)
        log.info(
            "ask_answered",
            events=len(page.items),
            answer_kind=answer.answer_kind,
            sent=answer.events_sent_to_model,
        )
        return answer

    async def _answer(self, question: str, query: Any, page: EventPage) -> AskAnswer:
        more = page.next_cursor is not None
        base = AskAnswer(
            question=question,
            query=query,
            events=page.items,
            next_cursor=page.next_cursor,
            answer=summarize(page.items, more=more),
        )
        if not self.settings.ai_send_event_fields or not page.items:
            return base
        views = events_for_narrative(
            question,
            query,
            page.items,
            more,
            max_events=self.settings.ai_narrative_max_events,
            max_tokens=self.settings.llm_max_prompt_tokens,
        )
        if not views:
            return base.model_copy(
                update={"note": "The events are too large to send to the model."}
            )
        messages = narrative_messages(question, query, views, len(page.items), more)
        try:
            arguments = await self.model.call_function(messages, narrative_tool())
            text, cited, dropped = checked_narrative(arguments, [e.id for e in page.items])
        except (ModelUnavailable, UnacceptableModelAnswer) as error:
            # The query ran and found these events: the analyst gets them with the computed
            # summary, told why there is no narrative.
            log.warning("ask_narrative_failed", problem=str(error))
            return base.model_copy(
                update={
                    "events_sent_to_model": len(views),
                    "note": f"No narrative: {error} The summary was computed without the model.",
                }
            )
        return base.model_copy(
            update={
                "answer": text,
                "answer_kind": "narrative",
                "citations": cited,
                "dropped_citations": dropped,
                "events_sent_to_model": len(views),
                "note": (
                    f"{len(dropped)} citation(s) of events not among the results were removed."
                    if dropped
                    else None
                ),
            }
        )

    async def explain(self, event_id: str, user: str) -> Explanation:
        """A short, security-minded explanation of one event, citing its fields."""
        self._check_on("Explaining events")
        if not self.settings.ai_send_event_fields:
            raise AssistantRefusal(
                404,
                "Not found",
                "Explaining events is off: AI_SEND_EVENT_FIELDS=false keeps events from the model.",
            )
        event = await self._reader().get_event(event_id)
        if event is None:
            raise AssistantRefusal(404, "Not found", "No event with this id.")
        self._spend(user)
        view = event_for_model(event, event_budget_chars(self.settings.llm_max_prompt_tokens))
        messages = explain_messages(view)
        sent_tokens = estimated_tokens(messages) + estimated_tokens(explain_tool())
        try:
            arguments = await self.model.call_function(messages, explain_tool())
            explanation = checked_explanation(
                arguments, view, model=self.model.name, sent_tokens=sent_tokens
            )
        except (ModelUnavailable, UnacceptableModelAnswer) as error:
            log.warning("explain_model_failed", problem=str(error))
            raise _model_failed(error) from None
        log.info(
            "event_explained",
            citations=len(explanation.citations),
            dropped=len(explanation.dropped_citations),
        )
        return explanation
