"""Local SIEMs for the tests: an HTTP receiver (ASGI under uvicorn) and a TCP syslog receiver.

Both listen on 127.0.0.1 on a free port and record what they accepted. The HTTP receiver answers like a
real SIEM on demand: 5xx, 429 with Retry-After, slow answers, 400 for a batch holding a given event, or
holding a request until the test releases it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ssl
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.utils.local_servers import serving_here

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Reply:
    """A scripted answer for the next request: `status` without recording it, after `delay_s`."""

    status: int = 503
    retry_after: str | None = None
    delay_s: float = 0.0
    then_accept: bool = False  # wait delay_s, then accept the batch (a slow but working SIEM)


@dataclass
class SeenRequest:
    """One request, listed when it arrived; `status` is filled in when it is answered.

    `key` is the batch's `Idempotency-Key` header, `event_keys` each event's idempotency key (from the
    JSON body's `event_keys`, or HEC's indexed field).
    """

    at: float
    ids: list[str]
    status: int = 0
    key: str = ""
    event_keys: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        return len(self.ids)


def event_id(event: dict[str, Any]) -> str:
    """The AOC event id, whatever schema the forwarder sends (AOC's `id`, ECS `event.id`, OCSF
    `metadata.uid`)."""
    if "id" in event:
        return str(event["id"])
    if "event" in event:
        return str(event["event"]["id"])
    return str(event["metadata"]["uid"])


@dataclass
class HttpSiem:
    """An ASGI app that takes the generic JSON batch or Splunk HEC and records accepted event ids."""

    siem_format: str = "json"
    hmac_secret: bytes | None = None
    hec_token: str | None = None
    accepted: list[str] = field(default_factory=list)
    accepted_events: list[dict[str, Any]] = field(default_factory=list)
    requests: list[SeenRequest] = field(default_factory=list)
    script: deque[Reply] = field(default_factory=deque)
    refuse_ids: set[str] = field(default_factory=set)
    down: bool = False
    hold_next: bool = False
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def counts(self) -> Counter[str]:
        return Counter(self.accepted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        seen = SeenRequest(
            time.monotonic(),
            [event_id(e) for e in self._events(body)],
            key=headers.get("idempotency-key", ""),
            event_keys=self._event_keys(body),
        )
        self.requests.append(seen)
        status, answer, extra = await self._answer(body, headers)
        seen.status = status
        response_headers = [(b"content-type", b"application/json"), *extra]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": orjson.dumps(answer)})

    async def _answer(
        self, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        if self.hmac_secret is not None:
            expected = "sha256=" + hmac.new(self.hmac_secret, body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(headers.get("x-aoc-signature", ""), expected):
                return 401, {"error": "bad signature"}, []
        if (
            self.hec_token is not None
            and headers.get("authorization") != f"Splunk {self.hec_token}"
        ):
            return 403, {"text": "Invalid token", "code": 4}, []
        if self.down:
            return 503, {"error": "down"}, []
        if self.script:
            reply = self.script.popleft()
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)  # a slow SIEM, on purpose
            if not reply.then_accept:
                extra = (
                    []
                    if reply.retry_after is None
                    else [(b"retry-after", reply.retry_after.encode())]
                )
                return reply.status, {"error": f"scripted {reply.status}"}, extra
        events = self._events(body)
        for position, event in enumerate(events):
            if event_id(event) in self.refuse_ids:
                if self.siem_format == "splunk_hec":
                    answer = {
                        "text": "Invalid data format",
                        "code": 6,
                        "invalid-event-number": position,
                    }
                else:
                    answer = {"error": f"event {event['id']} refused: operation not allowed"}
                return 400, answer, []
        if self.hold_next:
            self.hold_next = False
            self.accepted += [event_id(e) for e in events]
            self.accepted_events += events
            self.holding.set()
            await self.release.wait()  # the test kills the forwarder now: sent, never committed
            return 200, {"text": "Success", "code": 0}, []
        self.accepted += [event_id(e) for e in events]
        self.accepted_events += events
        return 200, {"text": "Success", "code": 0}, []

    def _event_keys(self, body: bytes) -> list[str]:
        if self.siem_format == "splunk_hec":
            envelopes = [orjson.loads(line) for line in body.splitlines() if line.strip()]
            return [e.get("fields", {}).get("aoc_idempotency_key", "") for e in envelopes]
        return list(orjson.loads(body).get("event_keys", []))

    def _events(self, body: bytes) -> list[dict[str, Any]]:
        if self.siem_format == "splunk_hec":
            return [orjson.loads(line)["event"] for line in body.splitlines() if line.strip()]
        return list(orjson.loads(body)["events"])


@contextlib.asynccontextmanager
async def serving(app: HttpSiem) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 on a free port; yields its base URL."""
    async with serving_here(app, shutdown_timeout_s=1) as url:
        try:
            yield url
        finally:
            app.release.set()  # a request held open must not hold the shutdown


class SyslogSiem:
    """A TCP syslog receiver reading RFC 6587 octet-counted RFC 5424 messages."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self.hang_up()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def hang_up(self) -> None:
        """Close every open connection, as a receiver restarting would."""
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                length = int((await reader.readuntil(b" "))[:-1])
                self.messages.append(await reader.readexactly(length))

    def ids(self) -> list[str]:
        return [event_id_of_syslog(message) for message in self.messages]


def syslog_parts(message: bytes) -> list[bytes]:
    """`<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG` split into its 8 parts.

    SD is `-` or one element `[id param="value" …]` (values here never hold `]`).
    """
    head = message.split(b" ", 6)
    rest = head.pop()
    if rest.startswith(b"["):
        end = rest.index(b"] ") + 1
        return [*head, rest[:end], rest[end + 1 :]]
    return [*head, *rest.split(b" ", 1)]


def syslog_idempotency_key(message: bytes) -> str:
    """The event's key: CEF's cs6, or the JSON payload's structured data."""
    parts = syslog_parts(message)
    if parts[7].startswith(b"CEF:0|"):
        return parts[7].split(b"cs6=", 1)[1].split(b" ", 1)[0].decode()
    return parts[6].split(b'idempotencyKey="', 1)[1].split(b'"', 1)[0].decode()


def event_id_of_syslog(message: bytes) -> str:
    payload = syslog_parts(message)[7]
    if payload.startswith(b"CEF:0|"):
        return payload.split(b"externalId=", 1)[1].split(b" ", 1)[0].decode()
    return str(orjson.loads(payload)["id"])
