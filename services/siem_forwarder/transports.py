"""How a batch reaches the SIEM: HTTP POST (generic JSON webhook, Splunk HEC) or syslog over TCP.

Each transport makes one attempt at one batch and says what the SIEM made of it: `Answer` for a final
reply (accepted, or rejected for its content), `SiemUnavailable` when the SIEM could not be reached, did
not answer in time, or refused in a way no event is to blame for (5xx, 408, 429, other 4xx). Whether and
when to try again is delivery.py's business (backoff, the circuit breaker); the dead letters belong to
the runtime. Secrets (HEC token, HMAC key) go into headers only and are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

import httpx

from aoc_common.http_retry import THROTTLED, retry_after_s
from aoc_common.logging import get_logger
from aoc_siem_forwarder.core import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    ForwardedEvent,
    SiemFormat,
    SyslogPayload,
    Verdict,
    batch_key,
    hec_body,
    hec_invalid_event_index,
    hmac_signature,
    json_batch_body,
    judge_response,
    octet_counted,
    syslog_message,
)

log = get_logger(__name__)


FailureKind = Literal["timeout", "http", "network"]


class SiemUnavailable(RuntimeError):
    """The batch was not acknowledged and no event in it is to blame: try again later.

    `kind` says what went wrong (a timeout may mean the SIEM got the batch and was slow to say so);
    `retry_after_s` is the SIEM's own `Retry-After`, when it sent one.
    """

    def __init__(self, message: str, kind: FailureKind, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class Answer:
    """The SIEM's final word on one batch."""

    verdict: Verdict
    status: int = 200
    text: str = ""
    invalid_index: int | None = None  # which event the SIEM blames, when it says so (Splunk HEC)


class Transport(Protocol):
    siem_format: SiemFormat
    needs_whole_events: bool
    """True when the transport builds its messages from the whole model (CEF); False when it sends the
    published bytes, so the forwarder need not rebuild each event."""

    async def send(self, events: Sequence[ForwardedEvent]) -> Answer:
        """Deliver `events` as one batch; raise SiemUnavailable when it cannot be delivered."""
        ...

    def size_of(self, event: ForwardedEvent) -> int:
        """About how many bytes the event adds to a batch (for SIEM_BATCH_MAX_BYTES)."""
        ...

    async def close(self) -> None: ...


class HttpTransport:
    """POST a batch to a JSON webhook or a Splunk HEC endpoint, one attempt per call."""

    def __init__(
        self,
        siem_format: SiemFormat,
        url: str,
        *,
        timeout_s: float,
        hmac_secret: bytes | None = None,
        hec_token: str | None = None,
        hec_sourcetype: str = "aoc:m365:audit",
        hec_index: str | None = None,
        host: str = "aoc",
    ) -> None:
        if siem_format == "syslog":
            raise ValueError("syslog is not an HTTP format")
        self.siem_format = siem_format
        self.needs_whole_events = False
        self.url = url
        self.timeout_s = timeout_s
        self._hmac_secret = hmac_secret
        self._hec_token = hec_token
        self._hec_sourcetype = hec_sourcetype
        self._hec_index = hec_index
        self._host = host
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s))
        # Webhook URLs often carry a token in their path: errors name the host only.
        self._peer = urlsplit(url).netloc

    def size_of(self, event: ForwardedEvent) -> int:
        return len(event.json) + (200 if self.siem_format == "splunk_hec" else 1)

    def body(self, events: Sequence[ForwardedEvent]) -> bytes:
        if self.siem_format == "splunk_hec":
            return hec_body(
                events, host=self._host, sourcetype=self._hec_sourcetype, index=self._hec_index
            )
        return json_batch_body(events)

    async def send(self, events: Sequence[ForwardedEvent]) -> Answer:
        body = self.body(events)
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: batch_key(events)}
        if self._hec_token is not None:
            headers["Authorization"] = f"Splunk {self._hec_token}"
        if self._hmac_secret is not None:
            headers[SIGNATURE_HEADER] = hmac_signature(self._hmac_secret, body)
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as error:
            raise SiemUnavailable(
                f"siem: POST to {self._peer} got no answer within {self.timeout_s:g} s "
                f"({type(error).__name__})",
                "timeout",
            ) from error
        except httpx.TransportError as error:
            problem = f"{type(error).__name__}: {error}".rstrip(": ")
            raise SiemUnavailable(
                f"siem: POST to {self._peer} failed: {problem}", "network"
            ) from error
        verdict = judge_response(
            response.status_code, response.content, siem_format=self.siem_format
        )
        text = response.text[:1500]
        if verdict == "unavailable":
            wait = retry_after_s(response) if response.status_code in THROTTLED else None
            raise SiemUnavailable(
                f"siem: POST to {self._peer} answered HTTP {response.status_code}: {text[:300]}",
                "http",
                retry_after_s=wait,
            )
        invalid = (
            hec_invalid_event_index(response.content, len(events))
            if verdict == "rejected" and self.siem_format == "splunk_hec"
            else None
        )
        return Answer(verdict, response.status_code, text, invalid)

    async def close(self) -> None:
        await self._client.aclose()


class SyslogTransport:
    """RFC 5424 messages over one TCP connection, octet-counted (RFC 6587); reconnects with backoff.

    With a TLS context the connection is RFC 5425 syslog over TLS (the same framing inside TLS); the
    context decides which certificates are trusted, and the host name is checked against `host`.

    Plain syslog over TCP has no acknowledgement: a batch counts as delivered once the kernel took all of
    it (`drain`). A receiver that dies with unread bytes in its buffers loses them without the sender
    knowing; the HTTP formats do not have that gap.
    """

    siem_format: SiemFormat = "syslog"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        payload: SyslogPayload,
        hostname: str,
        timeout_s: float,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.payload = payload
        self.needs_whole_events = payload == "cef"
        self.hostname = hostname
        self.timeout_s = timeout_s
        self.tls = tls
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    def size_of(self, event: ForwardedEvent) -> int:
        return len(event.json) + 100

    async def send(self, events: Sequence[ForwardedEvent]) -> Answer:
        data = b"".join(
            octet_counted(syslog_message(e, payload=self.payload, hostname=self.hostname))
            for e in events
        )
        try:
            writer = await self._connected()
            writer.write(data)
            await asyncio.wait_for(writer.drain(), self.timeout_s)
        except (OSError, TimeoutError) as error:
            await self.close()  # the next attempt opens a new connection
            problem = f"{type(error).__name__}: {error}".rstrip(": ")
            kind: FailureKind = "timeout" if isinstance(error, TimeoutError) else "network"
            raise SiemUnavailable(f"syslog {self.host}:{self.port}: {problem}", kind) from error
        return Answer("accepted")

    async def _connected(self) -> asyncio.StreamWriter:
        """The open connection, or a new one when there is none or the receiver closed its end."""
        reader, writer = self._reader, self._writer
        if reader is not None and writer is not None:
            # A syslog receiver never sends, so EOF means it hung up: write on a new connection.
            if not (reader.at_eof() or writer.is_closing()):
                return writer
            await self.close()
        started = time.monotonic()
        opened_reader, opened_writer = await asyncio.wait_for(
            asyncio.open_connection(
                self.host,
                self.port,
                ssl=self.tls,
                ssl_handshake_timeout=self.timeout_s if self.tls else None,
            ),
            self.timeout_s,
        )
        log.info(
            "syslog_connected",
            target=f"{self.host}:{self.port}",
            seconds=round(time.monotonic() - started, 3),
        )
        self._reader, self._writer = opened_reader, opened_writer
        return opened_writer

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is None:
            return
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), self.timeout_s)
