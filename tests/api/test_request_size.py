"""Huge request bodies are refused before any route reads them, declared or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from aoc_api.request_size import MAX_REQUEST_BYTES


async def test_a_declared_huge_body_is_a_413_problem_and_nothing_is_stored(
    client: httpx.AsyncClient,
) -> None:
    event_id = (await client.get("/api/events?page_size=1")).json()["items"][0]["id"]
    text = "x" * (MAX_REQUEST_BYTES + 1)
    response = await client.post(f"/api/events/{event_id}/comments", json={"text": text})

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert (await client.get(f"/api/events/{event_id}")).json()["comments"] == []


async def test_a_streamed_body_is_refused_once_it_crosses_the_bound(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(20):
            yield b"a" * (MAX_REQUEST_BYTES // 10)
        yield b'"}'

    response = await client.post("/api/rules", content=chunks())

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert str(MAX_REQUEST_BYTES) in response.json()["detail"]


async def test_a_normal_body_still_works(client: httpx.AsyncClient) -> None:
    event_id = (await client.get("/api/events?page_size=1")).json()["items"][0]["id"]
    response = await client.post(f"/api/events/{event_id}/comments", json={"text": "checked"})
    assert response.status_code == 201
