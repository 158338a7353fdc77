"""The forwarder against a real TCP syslog receiver on 127.0.0.1: RFC 5424 messages, octet-counted."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import orjson
import pytest
from prometheus_client import REGISTRY

from aoc_common.circuit_breaker import CircuitBreaker
from aoc_common.events import CanonicalEvent
from aoc_common.http_retry import RetryPolicy
from aoc_siem_forwarder.core import SyslogPayload
from aoc_siem_forwarder.runtime import SiemForwarder
from aoc_siem_forwarder.transports import SyslogTransport
from tests.siem_forwarder.conftest import Engine, caught_up, publish_events, running, wait_for
from tests.siem_forwarder.receivers import SyslogSiem, syslog_parts

FAST = RetryPolicy(max_attempts=20, base_delay_s=0.02, max_delay_s=0.1)
RFC5424_HEADER = re.compile(
    rb"^<(\d{1,3})>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [\x21-\x7e]{1,255} aoc - "
    rb"(directory|intune|unified) - $"
)


def retries() -> float:
    return (
        REGISTRY.get_sample_value(
            "aoc_siem_retries_total", {"format": "syslog", "reason": "network"}
        )
        or 0.0
    )


@pytest.fixture
async def receiver() -> AsyncIterator[SyslogSiem]:
    siem = SyslogSiem()
    await siem.start()
    yield siem
    await siem.stop()


def syslog_forwarder(engine: Engine, port: int, payload: SyslogPayload) -> SiemForwarder:
    transport = SyslogTransport(
        "127.0.0.1", port, payload=payload, hostname="aoc-test", timeout_s=2, policy=FAST
    )
    return SiemForwarder(
        engine.message_log,
        transport,
        breaker=CircuitBreaker(5, 30),
        batch_max_events=40,
        linger_s=0.05,
        group=engine.group,
    )


@pytest.mark.parametrize("payload", ["cef", "json"])
async def test_every_fixture_event_arrives_once_as_an_rfc5424_message(
    embedded: Engine, events: list[CanonicalEvent], receiver: SyslogSiem, payload: SyslogPayload
) -> None:
    await publish_events(embedded.message_log, events)
    async with running(syslog_forwarder(embedded, receiver.port, payload)):
        await wait_for(lambda: len(receiver.messages), lambda n: n >= len(events))
        await caught_up(embedded)

    assert sorted(receiver.ids()) == sorted(e.id for e in events)
    assert receiver.connections == 1  # one connection kept open for every batch
    by_id = {e.id: e for e in events}
    for message in receiver.messages:
        parts = syslog_parts(message)
        assert RFC5424_HEADER.match(b" ".join(parts[:7]) + b" "), message[:120]
        event = by_id[receiver.ids()[receiver.messages.index(message)]]
        severity = int(parts[0][1:].split(b">")[0]) % 8
        assert severity == (4 if event.result == "failure" else 5)
        if payload == "json":
            assert CanonicalEvent.model_validate(orjson.loads(parts[7])) == event
        else:
            assert parts[7].startswith(b"CEF:0|AOC|Admin Operations Center|")


async def test_the_forwarder_reconnects_when_the_receiver_hangs_up_between_batches(
    embedded: Engine, events: list[CanonicalEvent], receiver: SyslogSiem
) -> None:
    first, second = events[:60], events[60:]
    async with running(syslog_forwarder(embedded, receiver.port, "json")):
        await publish_events(embedded.message_log, first)
        await wait_for(lambda: len(receiver.messages), lambda n: n >= len(first))
        await receiver.hang_up()
        await publish_events(embedded.message_log, second)
        await wait_for(lambda: len(receiver.messages), lambda n: n >= len(events))
        await caught_up(embedded)

    assert sorted(receiver.ids()) == sorted(e.id for e in events)
    assert receiver.connections == 2


async def test_a_receiver_that_is_down_is_retried_until_it_listens_again(
    embedded: Engine, events: list[CanonicalEvent], receiver: SyslogSiem
) -> None:
    port = receiver.port
    await receiver.stop()  # nothing listens: connection refused
    await publish_events(embedded.message_log, events)
    forwarder = syslog_forwarder(embedded, port, "cef")
    retries_before = retries()
    async with running(forwarder):
        await wait_for(retries, lambda n: n >= retries_before + 2)  # refused, retried, refused
        await receiver.start(port)
        await wait_for(lambda: len(receiver.messages), lambda n: n >= len(events))
        await caught_up(embedded)

    assert set(receiver.ids()) == {e.id for e in events}
