"""`POST /api/ask` against a real SQLite store of the fixture events and a fake OpenAI-compatible
endpoint on 127.0.0.1: the model's tool call becomes the query, bounded by the active filters; the
narrative sees only masked, bounded events and cites only events returned; the model's bad answers,
failures and slowness become problems (or the computed summary); each user has a budget; with
AI_SEND_EVENT_FIELDS off the model never sees audit data."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from aoc_api.app import create_app
from aoc_common.event_store.base import EventStore
from aoc_common.events import CanonicalEvent
from aoc_common.query import EventQuery
from aoc_common.settings import Settings
from tests.utils.asgi import asgi_client
from tests.utils.fake_llm import FakeLlm, Reply, fake_llm, function_call, tool_call
from tests.utils.identity import (
    FakeIdentityProvider,
    SigningKey,
    auth_settings,
    bearer,
    open_api,
    sign,
)
from tests.utils.records import fixture_events

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
    """AI on against the fake model; the query only (no narrative) unless overridden."""
    return {
        "data_dir": tmp_path,
        "ai_features_enabled": True,
        "llm_api_key": "sk-test-key",
        "llm_base_url": f"{llm.url}/v1",
        "llm_model": "fake-model",
        "llm_timeout_seconds": 5.0,
        "ai_send_event_fields": False,
        **overrides,
    }


async def api_client(settings: Settings, store: EventStore) -> httpx.AsyncClient:
    app = create_app(settings, store=store, message_log=None)
    return asgi_client(app)


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


async def test_with_event_fields_off_the_model_never_sees_who_did_what(
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


async def test_llm_timeout_seconds_bounds_the_whole_call_and_is_a_504(
    llm: FakeLlm, tmp_path: Path, store: EventStore
) -> None:
    llm.reset(Reply(hang=True), Reply(hang=True), Reply(hang=True))
    settings = Settings(**llm_settings(llm, tmp_path, llm_timeout_seconds=0.5))

    async with await api_client(settings, store) as client:
        started = time.monotonic()
        response = await client.post("/api/ask", json={"question": QUESTION})
        waited = time.monotonic() - started

    assert "within 0.5 s" in is_problem(response, 504)["detail"]
    assert waited < 3.0  # retries included: not three times the timeout


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
    reader = bearer(sign(signing_keys["key-1"], idp, roles=["AOC.Reader"]))

    async with asgi_client(app) as client:
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


# --- the narrative: masked, bounded events in; only returned events cited ------------------------

SECRET_PASSWORD = "Winter2026!Secret"
SAS_SIGNATURE = "sv2026AbCdEfGh1234"
EXCHANGE = tool_call(service="Exchange", start="2026-11-01T00:00:00Z")


async def with_a_secret_in_a_raw_record(store: EventStore, fixtures_dir: Path) -> CanonicalEvent:
    """The newest Exchange event, its raw record carrying a password and a signed URL."""
    exchange = [e for e in fixture_events(fixtures_dir) if e.service == "Exchange"]
    newest = max(exchange, key=lambda e: (e.timestamp, e.id))
    raw = {
        **newest.raw,
        "Parameters": [
            *newest.raw.get("Parameters", []),
            {"Name": "Password", "Value": SECRET_PASSWORD},
            {"Name": "Url", "Value": f"https://x.example/f.docx?sig={SAS_SIGNATURE}&sp=r"},
        ],
    }
    changed = newest.model_copy(update={"raw": raw})
    await store.upsert_events([changed])
    return changed


async def test_the_narrative_gets_the_first_events_masked_and_bounded_and_cites_only_returned_ones(
    llm: FakeLlm, tmp_path: Path, store: EventStore, fixtures_dir: Path
) -> None:
    secret = await with_a_secret_in_a_raw_record(store, fixtures_dir)
    first, *_ = (await store.query_events(EventQuery(service=["Exchange"], page_size=1))).items
    assert first.id == secret.id
    narrative = (
        f"Mail forwarding was set on a mailbox [event:{secret.id}], and an admin did more "
        "[event:not-among-them] ."
    )
    llm.reset(
        EXCHANGE,
        function_call(
            "answer_question", {"answer": narrative, "cited_event_ids": [secret.id, "ghost"]}
        ),
    )
    settings = Settings(
        **llm_settings(
            llm,
            tmp_path,
            ai_send_event_fields=True,
            ai_narrative_max_events=5,
            llm_max_prompt_tokens=3000,
        )
    )

    async with await api_client(settings, store) as client:
        response = await client.post("/api/ask", json={"question": "Any mailbox changes?"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer_kind"] == "narrative"
    assert (
        body["answer"]
        == f"Mail forwarding was set on a mailbox [event:{secret.id}], and an admin did more."
    )
    assert body["citations"] == [secret.id]
    assert body["dropped_citations"] == ["not-among-them", "ghost"]
    assert body["events_sent_to_model"] == 5
    assert len(body["events"]) == 20
    # What the model received for the narrative: the first five events only, secrets masked,
    # within the prompt budget.
    _, sent = llm.requests
    assert sent["tools"][0]["function"]["name"] == "answer_question"
    content = sent["messages"][1]["content"]
    assert [e["id"] in content for e in body["events"]] == [True] * 5 + [False] * 15
    assert SECRET_PASSWORD not in content and SAS_SIGNATURE not in content
    assert "sig=[MASKED]" in content and '"Value":"[MASKED]"' in content
    assert "smtp:exfil@evil.example" in content  # facts that are not secrets stay
    sent_chars = len(orjson.dumps(sent["messages"])) + len(orjson.dumps(sent["tools"]))
    assert sent_chars <= 3000 * 3


async def test_the_active_filters_bound_the_query_the_model_builds(
    llm: FakeLlm, tmp_path: Path, store: EventStore
) -> None:
    filters = {"service": ["Exchange", "SharePoint"], "exclude_operation": ["Set-Mailbox"]}
    llm.reset(tool_call(service=["Exchange", "Intune"]), tool_call(service="Intune"))

    async with await api_client(Settings(**llm_settings(llm, tmp_path)), store) as client:
        within = await client.post("/api/ask", json={"question": "What?", "filters": filters})
        outside = await client.post("/api/ask", json={"question": "Intune?", "filters": filters})
        unknown = await client.post(
            "/api/ask", json={"question": "What?", "filters": {"tenant": "other"}}
        )

    assert within.status_code == 200, within.text
    query = within.json()["query"]
    assert (query["service"], query["exclude_operation"]) == (["Exchange"], ["Set-Mailbox"])
    operations = {e["operation"] for e in within.json()["events"]}
    assert operations and "Set-Mailbox" not in operations
    assert {e["service"] for e in within.json()["events"]} == {"Exchange"}
    assert outside.status_code == 200, outside.text
    assert outside.json()["events"] == []
    assert "outside the active filters" in outside.json()["answer"]
    assert "Intune" in outside.json()["note"]
    assert is_problem(unknown, 422)["errors"][0]["parameter"] == "filters.tenant"


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(arguments="{not json", function="answer_question"), "not JSON"),
        (function_call("answer_question", {"answer": ""}), "answer"),
        (function_call("answer_question", {"answer": "[event:ghost]"}), "empty"),
        (Reply(status=500), "HTTP 500"),
    ],
    ids=["malformed", "empty", "only-unknown-citations", "model-error"],
)
async def test_an_unusable_narrative_leaves_the_events_with_the_computed_summary(
    llm: FakeLlm, tmp_path: Path, store: EventStore, reply: Reply, reason: str
) -> None:
    llm.reset(EXCHANGE, reply, reply, reply)
    settings = Settings(**llm_settings(llm, tmp_path, ai_send_event_fields=True))

    async with await api_client(settings, store) as client:
        response = await client.post("/api/ask", json={"question": "Mailbox changes?"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["answer_kind"], len(body["events"])) == ("summary", 20)
    assert body["answer"].startswith("20 events from ")
    assert reason in body["note"]


async def test_each_user_has_a_budget_of_questions_and_the_next_is_a_429_with_retry_after(
    llm: FakeLlm, tmp_path: Path, store: EventStore
) -> None:
    llm.reset(EXCHANGE, EXCHANGE, EXCHANGE)
    settings = Settings(**llm_settings(llm, tmp_path, ai_requests_per_minute=2))

    async with await api_client(settings, store) as client:
        answered = [await client.post("/api/ask", json={"question": "Q?"}) for _ in range(2)]
        refused = await client.post("/api/ask", json={"question": "Q?"})

    assert [r.status_code for r in answered] == [200, 200]
    assert "2 questions and explanations a minute" in is_problem(refused, 429)["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert len(llm.requests) == 2
