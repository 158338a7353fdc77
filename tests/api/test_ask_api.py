"""`POST /api/ask` against a real SQLite store of the fixture events and a fake OpenAI-compatible
endpoint on 127.0.0.1: the model's tool call becomes the query, the model's bad answers and failures
become problems, and the model never sees audit data."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from aoc_api.app import create_app
from aoc_common.event_store.base import EventStore
from aoc_common.query import EventQuery
from aoc_common.settings import Settings
from tests.utils.fake_llm import FakeLlm, Reply, fake_llm, tool_call
from tests.utils.identity import (
    FakeIdentityProvider,
    SigningKey,
    auth_settings,
    bearer,
    open_api,
    sign,
)

QUESTION = "Who added users in Entra ID between the 1st and the 20th of November?"
ADDED_USERS = tool_call(
    service="Entra ID",
    operation="Add user",
    start="2026-11-01T00:00:00Z",
    end="2026-11-20T00:00:00Z",
)


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLlm]:
    yield from fake_llm()


def llm_settings(llm: FakeLlm, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "data_dir": tmp_path,
        "ai_features_enabled": True,
        "llm_api_key": "sk-test-key",
        "llm_base_url": f"{llm.url}/v1",
        "llm_model": "fake-model",
        "llm_timeout_seconds": 5.0,
        **overrides,
    }


async def api_client(settings: Settings, store: EventStore) -> httpx.AsyncClient:
    app = create_app(settings, store=store, message_log=None)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://aoc.test")


@pytest.fixture
async def ask_client(
    llm: FakeLlm, tmp_path: Path, store: EventStore
) -> AsyncIterator[httpx.AsyncClient]:
    llm.reset()
    async with await api_client(Settings(**llm_settings(llm, tmp_path)), store) as client:
        yield client


def is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def test_a_question_becomes_a_typed_query_and_answers_with_its_events(
    ask_client: httpx.AsyncClient, llm: FakeLlm, store: EventStore
) -> None:
    llm.reset(ADDED_USERS)

    response = await ask_client.post("/api/ask", json={"question": QUESTION})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["question"] == QUESTION
    assert body["query"]["service"] == ["Entra ID"]
    assert body["query"]["operation"] == ["Add user"]
    assert body["query"]["start"].startswith("2026-11-01T00:00:00")
    expected = await store.query_events(
        EventQuery.model_validate(orjson.loads(ADDED_USERS.arguments or ""))
    )
    assert [e["id"] for e in body["events"]] == [e.id for e in expected.items]
    assert (
        len(body["events"]) == 17
    )  # 14 Graph "Add user" + 3 Management Activity "Add user." (one operation)
    assert {(e["service"], e["operation"]) for e in body["events"]} == {("Entra ID", "Add user")}
    assert body["next_cursor"] is None
    assert body["answer"].startswith("17 events from ")
    assert "Entra ID: Add user (17)" in body["answer"]
    # What went to the model: the key, one forced function, the question as the user's words.
    (sent,) = llm.requests
    assert llm.authorizations == ["Bearer sk-test-key"]
    assert sent["model"] == "fake-model"
    assert [t["function"]["name"] for t in sent["tools"]] == ["search_events"]
    assert sent["tool_choice"]["function"]["name"] == "search_events"
    assert sent["messages"][-1] == {"role": "user", "content": QUESTION}
    assert "Add user" in sent["messages"][0]["content"]  # the vocabulary of operations


async def test_the_model_never_sees_who_did_what(
    ask_client: httpx.AsyncClient, llm: FakeLlm, store: EventStore
) -> None:
    llm.reset(ADDED_USERS)

    assert (await ask_client.post("/api/ask", json={"question": QUESTION})).status_code == 200

    sent = orjson.dumps(llm.requests).decode()
    events = (await store.query_events(EventQuery(page_size=500))).items
    actors = {e.actor_display for e in events if e.actor_display}
    summaries = {e.display_summary for e in events}
    assert actors and not [a for a in actors if a in sent]
    assert not [s for s in summaries if s in sent]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(arguments="DROP TABLE events; --"), "not JSON"),
        (Reply(arguments='["service", "Exchange"]'), "not a JSON object"),
        (tool_call(service="Exchange", where={"$ne": None}), "where: Extra inputs"),
        (tool_call(page_size="all of them"), "page_size"),
        (tool_call(page_size=100000), "page_size"),
        (tool_call(result="hacked"), "result"),
        (tool_call(actor="a" * 5000), "actor"),
        (
            tool_call(start="2016-11-01T00:00:00Z", end="2026-11-01T00:00:00Z"),
            "spans 3652 days",
        ),
        (tool_call(start="1066-10-14T09:00:00Z"), "between"),
        (tool_call(end="2999-01-01T00:00:00Z"), "not between"),
        (
            tool_call(start="2026-11-20T00:00:00Z", end="2026-11-01T00:00:00Z"),
            "end is before start",
        ),
        (Reply(content="Sure! The admins were alice and bob."), "not JSON"),
        (Reply(arguments='{"service": "Exchange"}', function="delete_events"), "did not call"),
        (Reply(), "did not call"),
    ],
    ids=[
        "sql",
        "array",
        "extra-field",
        "wrong-type",
        "huge-page",
        "bad-enum",
        "huge-string",
        "ten-years",
        "ancient",
        "far-future",
        "reversed",
        "prose",
        "other-function",
        "nothing",
    ],
)
async def test_an_unusable_model_answer_is_a_502_problem_naming_the_reason(
    ask_client: httpx.AsyncClient, llm: FakeLlm, reply: Reply, reason: str
) -> None:
    llm.reset(reply)

    response = await ask_client.post("/api/ask", json={"question": QUESTION})

    body = is_problem(response, 502)
    assert reason in body["detail"]
    assert "events" not in body


async def test_a_failing_model_is_retried_and_then_answers(
    ask_client: httpx.AsyncClient, llm: FakeLlm
) -> None:
    llm.reset(Reply(status=500), ADDED_USERS)

    response = await ask_client.post("/api/ask", json={"question": QUESTION})

    assert response.status_code == 200, response.text
    assert len(response.json()["events"]) == 17
    assert len(llm.requests) == 2


async def test_a_model_that_keeps_failing_is_a_502_after_the_retries(
    ask_client: httpx.AsyncClient, llm: FakeLlm
) -> None:
    llm.reset(Reply(status=500), Reply(status=503), Reply(status=500), ADDED_USERS)

    body = is_problem(await ask_client.post("/api/ask", json={"question": QUESTION}), 502)

    assert "HTTP 500" in body["detail"]
    assert len(llm.requests) == 3


async def test_a_model_that_does_not_answer_in_time_is_a_504(
    llm: FakeLlm, tmp_path: Path, store: EventStore
) -> None:
    llm.reset(Reply(hang=True), Reply(hang=True), Reply(hang=True))
    settings = Settings(**llm_settings(llm, tmp_path, llm_timeout_seconds=0.2))

    async with await api_client(settings, store) as client:
        response = await client.post("/api/ask", json={"question": QUESTION})

    assert "in time" in is_problem(response, 504)["detail"]
    assert len(llm.requests) == 3


async def test_questions_are_404_while_ai_features_are_off(
    llm: FakeLlm, tmp_path: Path, store: EventStore
) -> None:
    llm.reset(ADDED_USERS)
    settings = Settings(**llm_settings(llm, tmp_path, ai_features_enabled=False))

    async with await api_client(settings, store) as client:
        response = await client.post("/api/ask", json={"question": QUESTION})
        features = (await client.get("/api/config/features")).json()

    assert "AI_FEATURES_ENABLED" in is_problem(response, 404)["detail"]
    assert features["ai"] is False
    assert llm.requests == []


async def test_questions_without_an_api_key_are_503(
    llm: FakeLlm, tmp_path: Path, store: EventStore
) -> None:
    llm.reset(ADDED_USERS)
    settings = Settings(**llm_settings(llm, tmp_path, llm_api_key=None))

    async with await api_client(settings, store) as client:
        response = await client.post("/api/ask", json={"question": QUESTION})

    assert "LLM_API_KEY" in is_problem(response, 503)["detail"]
    assert llm.requests == []


@pytest.mark.parametrize(
    "body",
    [{}, {"question": ""}, {"question": "   "}, {"question": "x" * 1001}, {"question": 42}],
    ids=["missing", "empty", "blank", "too-long", "not-text"],
)
async def test_a_bad_question_is_422_and_never_reaches_the_model(
    ask_client: httpx.AsyncClient, llm: FakeLlm, body: dict[str, Any]
) -> None:
    llm.reset(ADDED_USERS)

    is_problem(await ask_client.post("/api/ask", json=body), 422)

    assert llm.requests == []


async def test_with_sign_in_on_a_reader_may_ask_and_no_token_is_401(
    llm: FakeLlm,
    idp: FakeIdentityProvider,
    signing_keys: dict[str, SigningKey],
    tmp_path: Path,
    store: EventStore,
) -> None:
    llm.reset(ADDED_USERS)
    settings = auth_settings(idp, tmp_path, **llm_settings(llm, tmp_path))
    app, _ = await open_api(settings, store, idp)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    reader = bearer(sign(signing_keys["key-1"], idp, roles=["AOC.Reader"]))

    async with httpx.AsyncClient(transport=transport, base_url="http://aoc.test") as client:
        anonymous = await client.post("/api/ask", json={"question": QUESTION})
        as_reader = await client.post("/api/ask", json={"question": QUESTION}, headers=reader)
        # The allow-list is for this path only: other POSTs still need a writer.
        comment = await client.post("/api/events/x/comments", json={"text": "a"}, headers=reader)

    is_problem(anonymous, 401)
    assert as_reader.status_code == 200, as_reader.text
    assert len(as_reader.json()["events"]) == 17
    assert comment.status_code == 403
    assert len(llm.requests) == 1


async def test_a_model_that_answers_the_query_as_json_text_instead_of_calling_is_understood(
    ask_client: httpx.AsyncClient, llm: FakeLlm
) -> None:
    llm.reset(Reply(content='{"service": "Exchange"}'))

    response = await ask_client.post("/api/ask", json={"question": "What happened in Exchange?"})

    assert response.status_code == 200, response.text
    assert response.json()["query"]["service"] == ["Exchange"]
    assert len(response.json()["events"]) == 20
