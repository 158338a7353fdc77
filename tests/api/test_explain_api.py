"""`POST /api/events/{id}/explain` against a real SQLite store of the fixture events and a fake
OpenAI-compatible endpoint on 127.0.0.1: what the model receives (this event only, secrets masked,
within the prompt budget), how its citations are checked, and every way it can fail."""

from __future__ import annotations

import time
from collections.abc import Iterator
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

PASSWORD = "Winter2026!Secret"
AI_SETTINGS = {
    "ai_features_enabled",
    "llm_api_key",
    "llm_base_url",
    "llm_model",
    "llm_timeout_seconds",
    "llm_max_prompt_tokens",
}
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZw"


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLlm]:
    yield from fake_llm()


def settings_for(llm: FakeLlm, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "ai_features_enabled": True,
        "llm_api_key": "sk-test-key",
        "llm_base_url": f"{llm.url}/v1",
        "llm_model": "fake-model",
        "llm_timeout_seconds": 5.0,
        "llm_max_prompt_tokens": 2500,
        **overrides,
    }
    return Settings(**values)


def client_for(settings: Settings, store: EventStore) -> httpx.AsyncClient:
    app = create_app(settings, store=store, message_log=None)
    return asgi_client(app)


@pytest.fixture
async def forwarding(store: EventStore, fixtures_dir: Path) -> CanonicalEvent:
    """Set-Mailbox forwarding to an external address; its raw record also carries a password
    parameter and a bearer token in a logged header."""
    event = next(
        e
        for e in fixture_events(fixtures_dir)
        if e.operation == "Set-Mailbox" and "exfil@evil.example" in orjson.dumps(e.raw).decode()
    )
    raw = {
        **event.raw,
        "Parameters": [*event.raw["Parameters"], {"Name": "Password", "Value": PASSWORD}],
        "RequestHeaders": {"Authorization": f"Bearer {TOKEN}"},
    }
    changed = event.model_copy(update={"raw": raw})
    await store.upsert_events([changed])
    return changed


def explanation(**overrides: Any) -> Reply:
    arguments = {
        "what_happened": "Mail of a mailbox is forwarded outside [field:raw.Parameters[1].Value].",
        "who_and_what": "[field:actor.user_principal_name] changed [field:raw.ObjectId].",
        "why_it_matters": "External forwarding is a classic exfiltration step "
        "[field:raw.Parameters[1].Value] [field:raw.NoSuchField].",
        "next_steps": ["Check the sign-ins of the actor [field:actor.ip_address]."],
        "risk": "high",
        "cited_fields": ["raw.Parameters[1].Value", "targets[7].id"],
        **overrides,
    }
    return function_call("explain_event", arguments)


async def all_events(store: EventStore) -> list[CanonicalEvent]:
    return (await store.query_events(EventQuery(page_size=500))).items


def is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


async def test_an_event_is_explained_from_its_own_fields_masked_with_checked_citations(
    llm: FakeLlm, tmp_path: Path, store: EventStore, forwarding: CanonicalEvent
) -> None:
    llm.reset(explanation())

    async with client_for(settings_for(llm, tmp_path), store) as client:
        response = await client.post(f"/api/events/{forwarding.id}/explain")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["event_id"], body["risk"], body["model"]) == (forwarding.id, "high", "fake-model")
    cited = {c["field"]: c["value"] for c in body["citations"]}
    assert cited == {
        "raw.Parameters[1].Value": "smtp:exfil@evil.example",
        "actor.user_principal_name": forwarding.actor.user_principal_name,
        "raw.ObjectId": forwarding.raw["ObjectId"],
        "actor.ip_address": forwarding.actor.ip_address,
    }
    assert body["dropped_citations"] == ["raw.NoSuchField", "targets[7].id"]
    assert body["why_it_matters"] == (
        "External forwarding is a classic exfiltration step [field:raw.Parameters[1].Value]."
    )
    # What the model received: this one event, masked, within the prompt budget.
    (sent,) = llm.requests
    assert [t["function"]["name"] for t in sent["tools"]] == ["explain_event"]
    assert sent["max_completion_tokens"] == 800
    text = orjson.dumps(sent["messages"]).decode()
    assert forwarding.id in text and "smtp:exfil@evil.example" in text
    others = [e.id for e in await all_events(store) if e.id != forwarding.id]
    assert not [other for other in others if other in text]
    assert PASSWORD not in text and TOKEN not in text
    assert text.count("[MASKED]") >= 2
    assert len(text) + len(orjson.dumps(sent["tools"])) <= 2500 * 3
    assert body["sent_estimated_tokens"] <= 2500


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(arguments="{'risk': 'high'", function="explain_event"), "not JSON"),
        (explanation(risk="catastrophic"), "risk"),
        (explanation(next_steps=[]), "next_steps"),
        (explanation(verdict="benign"), "verdict"),
        (
            explanation(
                what_happened="Nothing [field:raw.Made.Up].",
                who_and_what="Someone.",
                why_it_matters="Trust me.",
                next_steps=["Relax."],
                cited_fields=[],
            ),
            "cites none of the event's fields (it cited raw.Made.Up)",
        ),
        (tool_call(service="Exchange"), "did not call explain_event"),
        (Reply(status=400), "HTTP 400"),
    ],
    ids=["not-json", "bad-risk", "no-steps", "extra-field", "ungrounded", "other-function", "4xx"],
)
async def test_an_unusable_explanation_is_a_502_problem_saying_why(
    llm: FakeLlm,
    tmp_path: Path,
    store: EventStore,
    forwarding: CanonicalEvent,
    reply: Reply,
    reason: str,
) -> None:
    llm.reset(reply)

    async with client_for(settings_for(llm, tmp_path), store) as client:
        response = await client.post(f"/api/events/{forwarding.id}/explain")

    assert reason in is_problem(response, 502)["detail"]


async def test_a_model_slower_than_llm_timeout_seconds_is_a_504(
    llm: FakeLlm, tmp_path: Path, store: EventStore, forwarding: CanonicalEvent
) -> None:
    llm.reset(Reply(hang=True), Reply(hang=True), Reply(hang=True))
    settings = settings_for(llm, tmp_path, llm_timeout_seconds=0.5)

    async with client_for(settings, store) as client:
        started = time.monotonic()
        response = await client.post(f"/api/events/{forwarding.id}/explain")

    assert "did not answer within 0.5 s" in is_problem(response, 504)["detail"]
    assert time.monotonic() - started < 3.0


async def test_explain_is_404_when_off_or_for_an_unknown_event_and_the_features_say_so(
    llm: FakeLlm, tmp_path: Path, store: EventStore, forwarding: CanonicalEvent
) -> None:
    llm.reset(explanation(), explanation(), explanation())
    url = f"/api/events/{forwarding.id}/explain"

    async with client_for(settings_for(llm, tmp_path, ai_features_enabled=False), store) as off:
        ai_off = await off.post(url)
        ai_off_features = (await off.get("/api/config/features")).json()
    fields_off = settings_for(llm, tmp_path, ai_send_event_fields=False)
    async with client_for(fields_off, store) as no_fields:
        no_event_fields = await no_fields.post(url)
        no_fields_features = (await no_fields.get("/api/config/features")).json()
    async with client_for(settings_for(llm, tmp_path), store) as on:
        unknown = await on.post("/api/events/no-such-event/explain")
        on_features = (await on.get("/api/config/features")).json()

    assert "AI_FEATURES_ENABLED" in is_problem(ai_off, 404)["detail"]
    assert "AI_SEND_EVENT_FIELDS" in is_problem(no_event_fields, 404)["detail"]
    assert "No event" in is_problem(unknown, 404)["detail"]
    assert llm.requests == []
    flags = [
        (f["ai"], f["ai_features_enabled"], f["ai_explain"])
        for f in (ai_off_features, no_fields_features, on_features)
    ]
    assert flags == [(False, False, False), (True, True, False), (True, True, True)]
    assert {"auth", "alerts", "siem", "periodic_fetch"} <= set(on_features)


async def test_questions_and_explanations_share_each_users_budget(
    llm: FakeLlm, tmp_path: Path, store: EventStore, forwarding: CanonicalEvent
) -> None:
    narrative = function_call("answer_question", {"answer": "Nothing stands out."})
    llm.reset(tool_call(service="Exchange"), narrative, explanation())
    settings = settings_for(llm, tmp_path, ai_requests_per_minute=2)

    async with client_for(settings, store) as client:
        asked = await client.post("/api/ask", json={"question": "Exchange?"})
        explained = await client.post(f"/api/events/{forwarding.id}/explain")
        refused = await client.post(f"/api/events/{forwarding.id}/explain")

    assert asked.status_code == 200, asked.text
    assert explained.status_code == 200, explained.text
    is_problem(refused, 429)
    assert int(refused.headers["Retry-After"]) >= 1


async def test_with_sign_in_on_a_reader_may_explain_and_no_token_is_401(
    llm: FakeLlm,
    idp: FakeIdentityProvider,
    signing_keys: dict[str, SigningKey],
    tmp_path: Path,
    store: EventStore,
    forwarding: CanonicalEvent,
) -> None:
    llm.reset(explanation())
    settings = auth_settings(
        idp, tmp_path, **settings_for(llm, tmp_path).model_dump(include=AI_SETTINGS)
    )
    app, _ = await open_api(settings, store, idp)
    reader = bearer(sign(signing_keys["key-1"], idp, roles=["AOC.Reader"]))
    url = f"/api/events/{forwarding.id}/explain"

    async with asgi_client(app) as client:
        anonymous = await client.post(url)
        as_reader = await client.post(url, headers=reader)

    is_problem(anonymous, 401)
    assert as_reader.status_code == 200, as_reader.text
    assert len(llm.requests) == 1
