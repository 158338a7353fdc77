"""The shared retry discipline, against an httpx transport that answers like a throttling server."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from aoc_common.http_retry import RetriesExhausted, RetryPolicy, request_with_retries, retry_after_s

URL = "https://graph.example/v1.0/auditLogs/directoryAudits?$top=999&sig=secret"


class Recorder:
    """Serves scripted answers in order and remembers what was asked and how long we slept."""

    def __init__(self, answers: list[httpx.Response | Exception]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler), timeout=5)


async def call(recorder: Recorder, **kwargs: object) -> httpx.Response:
    async with recorder.client() as client:
        return await request_with_retries(
            client, "GET", URL, target="graph", sleep=recorder.sleep, **kwargs
        )


async def test_throttled_calls_wait_exactly_as_long_as_retry_after_says() -> None:
    recorder = Recorder(
        [
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(503, headers={"Retry-After": "2"}),
            httpx.Response(200, json={"value": []}),
        ]
    )
    response = await call(recorder)
    assert response.status_code == 200
    assert recorder.sleeps == [7.0, 2.0]
    assert len(recorder.requests) == 3


async def test_server_errors_and_network_failures_back_off_and_then_succeed() -> None:
    recorder = Recorder(
        [
            httpx.Response(500),
            httpx.ConnectError("connection refused"),
            httpx.Response(200, json={"ok": True}),
        ]
    )
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=10.0)
    response = await call(recorder, policy=policy)
    assert response.json() == {"ok": True}
    assert len(recorder.sleeps) == 2
    assert 0 <= recorder.sleeps[0] <= 1.0 and 0 <= recorder.sleeps[1] <= 2.0


async def test_a_client_error_is_returned_at_once_for_the_caller_to_judge() -> None:
    recorder = Recorder([httpx.Response(400, json={"error": "bad filter"})])
    response = await call(recorder)
    assert response.status_code == 400
    assert recorder.sleeps == []


async def test_after_the_last_attempt_the_error_names_the_problem_but_not_the_query() -> None:
    recorder = Recorder([httpx.Response(502)] * 3)
    with pytest.raises(RetriesExhausted) as raised:
        await call(recorder, policy=RetryPolicy(max_attempts=3))
    assert raised.value.status == 502
    message = str(raised.value)
    assert "failed after 3 attempts: HTTP 502" in message
    assert "secret" not in message and "$top" not in message
    assert len(recorder.sleeps) == 2


async def test_a_401_refreshes_the_token_once_and_retries_with_the_new_one() -> None:
    tokens = iter(["expired", "fresh", "never-used"])
    current = {"token": next(tokens)}
    refreshes: list[str] = []

    async def auth_headers() -> dict[str, str]:
        return {"Authorization": f"Bearer {current['token']}"}

    async def refresh() -> None:
        refreshes.append(current["token"])
        current["token"] = next(tokens)

    recorder = Recorder([httpx.Response(401), httpx.Response(200), httpx.Response(401)])
    response = await call(recorder, auth_headers=auth_headers, refresh_auth=refresh)
    assert response.status_code == 200
    assert [r.headers["authorization"] for r in recorder.requests] == [
        "Bearer expired",
        "Bearer fresh",
    ]
    assert refreshes == ["expired"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", lambda s: s == 120.0),
        ("Wed, 25 Nov 2026 12:00:30 GMT", lambda s: s == 30.0),
        ("Wed, 25 Nov 2026 11:00:00 GMT", lambda s: s == 0.0),
        ("soon", lambda s: s is None),
    ],
)
def test_retry_after_is_read_as_seconds_or_as_an_http_date(
    header: str, expected: Callable[[float | None], bool]
) -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    assert expected(retry_after_s(httpx.Response(429, headers={"Retry-After": header}), now))
