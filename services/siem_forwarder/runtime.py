"""The SIEM forwarder's shell: `aoc.events` in (its own consumer group), batches out to the SIEM.

Delivery is at-least-once: offsets are committed (by the Consumer base) only after `handle_events`
returned and its dead letters are on `aoc.dlq`, i.e. after the SIEM acknowledged every event of the batch
or refused it with an answer the dead letter keeps.
A crash in between means the batch is sent again (the SIEM may see an event twice, never zero times).

- A batch the SIEM rejects for its content (HTTP 400/413/422) is split in halves, recursively, until the
  events it refuses on their own are found; those are dead-lettered and the rest are forwarded.
- A SIEM that cannot be reached, answers too late or answers 5xx is tried again after growing waits
  (delivery.py); every such attempt counts on the circuit breaker. After SIEM_BREAKER_FAILURES failed
  attempts in a row the circuit opens: no call for SIEM_BREAKER_COOLDOWN_SECONDS, then the consumer
  rejoins from the committed offset and one batch tries the SIEM again.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import replace

from aoc_common import topics
from aoc_common.circuit_breaker import CircuitBreaker
from aoc_common.dead_letter import DeadLetter
from aoc_common.http_retry import RetryPolicy
from aoc_common.logging import get_logger
from aoc_common.message_log.base import MessageLog, Record
from aoc_common.message_log.consumer import EventConsumer
from aoc_common.metrics import SIEM_BATCH_SECONDS, SIEM_EVENTS_FORWARDED
from aoc_common.settings import ConfigurationError, Settings
from aoc_common.siem_formats import SiemSchema, encode_as
from aoc_siem_forwarder.core import (
    STAGE,
    ForwardedEvent,
    decode_to_pass_on,
    plan_batches,
    rejected_by_siem,
    whole_event,
)
from aoc_siem_forwarder.delivery import SIEM_RETRY_POLICY, Delivery
from aoc_siem_forwarder.transports import HttpTransport, SyslogTransport, Transport

log = get_logger(__name__)


def transport_from_settings(settings: Settings) -> Transport:
    """The transport SIEM_FORMAT asks for; Settings has already checked that its settings are there."""
    host = socket.gethostname()
    secret = settings.siem_hmac_secret
    hmac_secret = None if secret is None else secret.get_secret_value().encode("utf-8")
    if settings.siem_format == "syslog":
        assert settings.syslog_host is not None
        return SyslogTransport(
            settings.syslog_host,
            settings.syslog_port,
            payload=settings.syslog_payload,
            hostname=host,
            timeout_s=settings.siem_timeout_seconds,
            tls=syslog_tls_context(settings),
        )
    if settings.siem_format == "splunk_hec":
        assert settings.splunk_hec_url is not None and settings.splunk_hec_token is not None
        return HttpTransport(
            "splunk_hec",
            settings.splunk_hec_url,
            timeout_s=settings.siem_timeout_seconds,
            hmac_secret=hmac_secret,
            hec_token=settings.splunk_hec_token.get_secret_value(),
            hec_sourcetype=settings.splunk_hec_sourcetype,
            hec_index=settings.splunk_hec_index,
            host=host,
        )
    assert settings.siem_webhook_url is not None
    return HttpTransport(
        "json",
        settings.siem_webhook_url,
        timeout_s=settings.siem_timeout_seconds,
        hmac_secret=hmac_secret,
    )


def syslog_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """Verify the receiver's certificate and name, against SYSLOG_TLS_CA_FILE or the system's CAs."""
    if not settings.syslog_tls:
        return None
    ca_file = settings.syslog_tls_ca_file
    # Checked here, not in Settings: the file is mounted where the forwarder runs, not in every container.
    if ca_file is not None and not ca_file.is_file():
        raise ConfigurationError(f"configuration error: SYSLOG_TLS_CA_FILE={ca_file}: not a file")
    return ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))


class SiemForwarder(EventConsumer):
    """Consumes `aoc.events` as aoc-siem-forwarder and hands batches to one transport (its own: closed
    when the forwarder stops)."""

    service = STAGE
    reader = "forwarder"

    def __init__(
        self,
        message_log: MessageLog,
        transport: Transport,
        *,
        breaker: CircuitBreaker,
        policy: RetryPolicy = SIEM_RETRY_POLICY,
        batch_max_events: int = 500,
        batch_max_bytes: int = 1_000_000,
        linger_s: float = 1.0,
        group: str = topics.SIEM_FORWARDER_GROUP,
        schema: SiemSchema = "aoc",
    ) -> None:
        super().__init__(
            message_log,
            topics=[topics.EVENTS],
            group=group,
            batch_size=batch_max_events,
            linger_s=linger_s,
        )
        self.transport = transport
        self.breaker = breaker
        self.delivery = Delivery(transport, breaker, policy)
        self.batch_max_events = batch_max_events
        self.batch_max_bytes = batch_max_bytes
        self._format = transport.siem_format
        self.schema = schema

    @classmethod
    def from_settings(
        cls, message_log: MessageLog, settings: Settings, *, policy: RetryPolicy | None = None
    ) -> SiemForwarder:
        policy = policy or replace(SIEM_RETRY_POLICY, max_attempts=settings.siem_max_attempts)
        return cls(
            message_log,
            transport_from_settings(settings),
            breaker=CircuitBreaker(
                settings.siem_breaker_failures, settings.siem_breaker_cooldown_seconds
            ),
            policy=policy,
            batch_max_events=settings.siem_batch_max_events,
            batch_max_bytes=settings.siem_batch_max_bytes,
            linger_s=settings.siem_batch_linger_ms / 1000,
            schema=settings.siem_schema,
        )

    @property
    def passes_events_on(self) -> bool:
        """Whether the SIEM gets each event's published bytes (AOC's schema, no CEF): then the events
        are not rebuilt as models, which cost more than sending them (bench/siem.py)."""
        return self.schema == "aoc" and not self.transport.needs_whole_events

    async def handle(self, records: Sequence[Record]) -> Sequence[DeadLetter]:
        if not self.passes_events_on:
            return await super().handle(records)
        decoded = decode_to_pass_on(records)
        refused = await self.handle_events(decoded.events) if decoded.events else []
        return [*decoded.dead_letters, *refused]

    async def handle_events(self, events: Sequence[ForwardedEvent]) -> list[DeadLetter]:
        """Forward one consumed batch; returns when every event is acknowledged or refused."""
        events = in_schema(self.schema, events)
        dead_letters: list[DeadLetter] = []
        batches = plan_batches(
            events,
            max_items=self.batch_max_events,
            max_bytes=self.batch_max_bytes,
            size_of=self.transport.size_of,
        )
        # Delivery raises RetryLater while the SIEM is down or the breaker open: nothing is committed
        # and the batch is read again after that wait.
        for batch in batches:
            started = time.perf_counter()
            dead_letters += await self._deliver(batch)
            SIEM_BATCH_SECONDS.labels(self._format).observe(time.perf_counter() - started)
        return dead_letters

    async def _deliver(self, events: Sequence[ForwardedEvent]) -> list[DeadLetter]:
        """Send `events`; when the SIEM rejects their content, find the events it refuses on their own.

        Bisection costs about 2·log2(n) requests per refused event; Splunk HEC names the bad event, which
        is then tried alone first. Events of a sub-batch the SIEM accepted are never sent again here.
        """
        if not events:
            return []
        answer = await self.delivery.send(events)
        if answer.verdict == "accepted":
            SIEM_EVENTS_FORWARDED.labels(self._format).inc(len(events))
            return []
        if len(events) == 1:
            refused = events[0]
            log.warning(
                "siem refused an event",
                event_id=refused.event.id,
                status=answer.status,
                offset=refused.record.offset,
            )
            return [rejected_by_siem(refused.record, answer.status, answer.text)]
        blamed = answer.invalid_index
        if blamed is not None:
            parts = [events[:blamed], events[blamed : blamed + 1], events[blamed + 1 :]]
        else:
            middle = len(events) // 2
            parts = [events[:middle], events[middle:]]
        dead: list[DeadLetter] = []
        for part in parts:
            dead += await self._deliver(part)
        return dead

    async def on_stop(self) -> None:
        await self.transport.close()


def in_schema(schema: SiemSchema, events: Sequence[ForwardedEvent]) -> Sequence[ForwardedEvent]:
    """The events as the SIEM gets them: their JSON replaced by the ECS or OCSF document (the
    record's offsets stay, so commits and dead letters still point at the consumed record; the
    idempotency keys hash what is sent)."""
    if schema == "aoc":
        return events
    return [
        replace(
            item, record=replace(item.record, value=encode_as(schema, whole_event(item), item.json))
        )
        for item in events
    ]
