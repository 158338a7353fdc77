"""The forwarder against a real TCP syslog receiver on 127.0.0.1: RFC 5424 messages, octet-counted."""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY

from aoc_common.circuit_breaker import CircuitBreaker
from aoc_common.events import CanonicalEvent
from aoc_common.http_retry import RetryPolicy
from aoc_common.settings import Settings
from aoc_siem_forwarder.core import SyslogPayload
from aoc_siem_forwarder.runtime import SiemForwarder
from aoc_siem_forwarder.transports import SiemUnavailable, SyslogTransport
from tests.utils.consumers import running
from tests.utils.siem import Engine, caught_up
from tests.utils.siem_receivers import SyslogSiem, syslog_idempotency_key, syslog_parts
from tests.utils.topic_io import publish_events
from tests.utils.waiting import wait_for

FAST = RetryPolicy(max_attempts=20, base_delay_s=0.02, max_delay_s=0.1)
RFC5424_HEADER = re.compile(
    rb"^<(\d{1,3})>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [\x21-\x7e]{1,255} aoc - "
    rb"(directory|intune|unified) "
    rb'(- |\[aoc@32473 idempotencyKey="[0-9a-f]{32}"\] )$'
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
        "127.0.0.1", port, payload=payload, hostname="aoc-test", timeout_s=2
    )
    return SiemForwarder(
        engine.message_log,
        transport,
        breaker=CircuitBreaker(50, 30),
        policy=FAST,
        batch_max_events=40,
        linger_s=0.05,
        group=engine.group,
    )


@pytest.mark.parametrize("payload", ["cef", "json"])
async def test_every_fixture_event_arrives_once_as_an_rfc5424_message(
    engine: Engine, events: list[CanonicalEvent], receiver: SyslogSiem, payload: SyslogPayload
) -> None:
    await publish_events(engine.message_log, events)
    async with running(syslog_forwarder(engine, receiver.port, payload)):
        await wait_for(lambda: len(receiver.messages), lambda n: n >= len(events))
        await caught_up(engine)

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
            assert parts[6].startswith(b"[aoc@32473 ")
        else:
            assert parts[7].startswith(b"CEF:0|AOC|Admin Operations Center|")
            assert parts[6] == b"-"
    keys = {receiver.ids()[i]: syslog_idempotency_key(m) for i, m in enumerate(receiver.messages)}
    assert len(set(keys.values())) == len(events)  # one key per event, each its own


async def test_the_forwarder_reconnects_when_the_receiver_hangs_up_between_batches(
    engine: Engine, events: list[CanonicalEvent], receiver: SyslogSiem
) -> None:
    first, second = events[:60], events[60:]
    async with running(syslog_forwarder(engine, receiver.port, "json")):
        await publish_events(engine.message_log, first)
        await wait_for(lambda: len(receiver.messages), lambda n: n >= len(first))
        await receiver.hang_up()
        await publish_events(engine.message_log, second)
        await wait_for(lambda: len(receiver.messages), lambda n: n >= len(events))
        await caught_up(engine)

    assert sorted(receiver.ids()) == sorted(e.id for e in events)
    assert receiver.connections == 2


async def test_a_receiver_that_is_down_is_retried_until_it_listens_again(
    engine: Engine, events: list[CanonicalEvent], receiver: SyslogSiem
) -> None:
    port = receiver.port
    await receiver.stop()  # nothing listens: connection refused
    await publish_events(engine.message_log, events)
    forwarder = syslog_forwarder(engine, port, "cef")
    retries_before = retries()
    async with running(forwarder):
        await wait_for(retries, lambda n: n >= retries_before + 2)  # refused, retried, refused
        await receiver.start(port)
        await wait_for(lambda: len(receiver.messages), lambda n: n >= len(events))
        await caught_up(engine)

    assert set(receiver.ids()) == {e.id for e in events}


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key (PEM files): the receiver's and its CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aoc test syslog receiver")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "receiver.pem", folder / "receiver.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_syslog_over_tls_verifies_the_receiver_and_delivers_every_event(
    engine: Engine, events: list[CanonicalEvent], tmp_path: Path
) -> None:
    cert_file, key_file = self_signed_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    receiver = SyslogSiem()
    await receiver.start(tls=server_tls)
    try:
        settings = Settings(
            siem_enabled=True,
            siem_format="syslog",
            syslog_host="127.0.0.1",
            syslog_port=receiver.port,
            syslog_tls=True,
            syslog_tls_ca_file=cert_file,
            siem_batch_linger_ms=50,
        )
        untrusting = SyslogTransport(
            "127.0.0.1",
            receiver.port,
            payload="cef",
            hostname="h",
            timeout_s=2,
            tls=ssl.create_default_context(),  # the system's CAs do not know this receiver
        )
        with pytest.raises(SiemUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.send([])
        await untrusting.close()

        await publish_events(engine.message_log, events)
        async with running(SiemForwarder.from_settings(engine.message_log, settings)):
            await wait_for(lambda: len(receiver.messages), lambda n: n >= len(events))
            await caught_up(engine)
    finally:
        await receiver.stop()

    assert sorted(receiver.ids()) == sorted(e.id for e in events)
