"""The forwarder's pure core: formats, framing, signatures, batching and how a SIEM's answer is read."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import random
import re
from collections.abc import Callable

import orjson
import pytest

from aoc_common.codec import encode
from aoc_common.consumed_events import ConsumedEvent, DecodedEvents
from aoc_common.events import SCHEMA_VERSION, Actor, CanonicalEvent
from aoc_common.message_log.base import Record
from aoc_siem_forwarder.core import (
    batch_key,
    cef_payload,
    decode_batch,
    decode_to_pass_on,
    event_key,
    growing_backoff_s,
    hec_body,
    hec_invalid_event_index,
    hmac_signature,
    json_batch_body,
    judge_response,
    octet_counted,
    plan_batches,
    syslog_hostname,
    syslog_message,
)


def record_of(event: CanonicalEvent, offset: int = 0) -> Record:
    return Record("aoc.events", 0, offset, event.dedupe_key.encode(), encode(event), 0)


def forwardable(event: CanonicalEvent) -> ConsumedEvent:
    batch = decode_batch([record_of(event)])
    assert not batch.dead_letters
    return batch.events[0]


@pytest.fixture
def event(fixture_events: list[CanonicalEvent]) -> CanonicalEvent:
    return fixture_events[0]


@pytest.mark.parametrize("decode", [decode_batch, decode_to_pass_on])
def test_decode_keeps_canonical_events_and_dead_letters_anything_else(
    fixture_events: list[CanonicalEvent], decode: Callable[[list[Record]], DecodedEvents]
) -> None:
    """Both ways of reading (whole models for CEF/ECS/OCSF, published bytes passed on for AOC's own
    JSON) refuse the same records for the same reasons."""
    newer = orjson.loads(encode(fixture_events[1]))
    newer["schema_version"] = SCHEMA_VERSION + 1
    records = [
        record_of(fixture_events[0], 0),
        Record("aoc.events", 0, 1, b"k1", b"{not json", 0),
        Record("aoc.events", 0, 2, b"k2", orjson.dumps({"id": "x"}), 0),
        Record("aoc.events", 0, 3, b"k3", orjson.dumps(newer), 0),
    ]

    batch = decode(records)

    assert [e.event.id for e in batch.events] == [fixture_events[0].id]
    assert batch.events[0].json == records[0].value  # forwarded byte for byte
    reasons = [d.reason for d in batch.dead_letters]
    assert [d.source_offset for d in batch.dead_letters] == [1, 2, 3]
    assert reasons[0].startswith("not a canonical event") and "Invalid JSON" in reasons[0]
    assert (
        reasons[1].startswith("not a canonical event")
        and "dedupe_key: Field required" in reasons[1]
    )
    assert f"schema_version {SCHEMA_VERSION + 1} is newer than this forwarder" in reasons[2]
    assert {d.stage for d in batch.dead_letters} == {"siem_forwarder"}


def test_json_batch_body_is_the_documented_object_of_canonical_events(
    fixture_events: list[CanonicalEvent],
) -> None:
    items = [forwardable(e) for e in fixture_events[:3]]

    body = orjson.loads(json_batch_body(items))

    assert body["count"] == 3
    assert [CanonicalEvent.model_validate(e) for e in body["events"]] == fixture_events[:3]
    assert body["event_keys"] == [event_key(item) for item in items]
    assert body["idempotency_key"] == batch_key(items)


def test_idempotency_keys_are_the_same_for_every_copy_and_new_for_a_new_version(
    fixture_events: list[CanonicalEvent],
) -> None:
    event = fixture_events[0]
    copy = forwardable(event)
    renamed = forwardable(event.model_copy(update={"actor_display": "Named by renormalize"}))
    items = [forwardable(e) for e in fixture_events[:3]]

    assert event_key(copy) == event_key(forwardable(event))
    assert event_key(renamed) != event_key(copy)  # same id, newer version: not a repeat
    assert re.fullmatch(r"[0-9a-f]{32}", event_key(copy))
    assert batch_key(items) == batch_key([forwardable(e) for e in fixture_events[:3]])
    assert batch_key(items) != batch_key(items[:2])
    assert batch_key(items) != batch_key(list(reversed(items)))


def test_hec_and_cef_carry_each_events_key(fixture_events: list[CanonicalEvent]) -> None:
    item = forwardable(fixture_events[0])

    envelope = orjson.loads(hec_body([item], host="h", sourcetype="s", index=None))
    cef = syslog_message(item, payload="cef", hostname="h")

    assert envelope["fields"] == {"aoc_idempotency_key": event_key(item)}
    assert f"cs6Label=idempotencyKey cs6={event_key(item)}".encode() in cef


def test_backoff_grows_with_jitter_and_never_shrinks() -> None:
    rng = random.Random(7)
    for _ in range(200):
        waits = [growing_backoff_s(n, base_s=1.0, cap_s=60.0, rng=rng) for n in range(1, 12)]
        assert all(later >= earlier for earlier, later in itertools.pairwise(waits))
        for n, wait in enumerate(waits, start=1):
            assert min(60.0, 2 ** (n - 2)) <= wait <= min(60.0, 2 ** (n - 1))
        assert waits[-1] == 60.0
    spread = {round(growing_backoff_s(3, base_s=1.0, cap_s=60.0, rng=rng), 3) for _ in range(50)}
    assert len(spread) > 10  # jittered: forwarders that failed together do not retry together


def test_the_signature_is_hmac_sha256_of_the_exact_body() -> None:
    body = b'{"count":0,"events":[]}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()

    assert hmac_signature(b"s3cret", body) == f"sha256={expected}"
    assert hmac_signature(b"other", body) != hmac_signature(b"s3cret", body)


def test_hec_body_is_one_envelope_per_line_timed_by_the_admin_action(
    fixture_events: list[CanonicalEvent],
) -> None:
    items = [forwardable(e) for e in fixture_events[:2]]

    lines = hec_body(items, host="aoc-1", sourcetype="aoc:m365:audit", index="m365").splitlines()

    assert len(lines) == 2
    envelope = orjson.loads(lines[0])
    assert envelope["time"] == pytest.approx(fixture_events[0].timestamp.timestamp(), abs=0.001)
    assert envelope["host"] == "aoc-1"
    assert envelope["source"] == f"aoc:{fixture_events[0].source}"
    assert envelope["sourcetype"] == "aoc:m365:audit"
    assert envelope["index"] == "m365"
    assert CanonicalEvent.model_validate(envelope["event"]) == fixture_events[0]
    no_index = orjson.loads(hec_body(items[:1], host="h", sourcetype="s", index=None))
    assert "index" not in no_index


def test_syslog_message_is_rfc5424_with_the_event_time_and_source(event: CanonicalEvent) -> None:
    message = syslog_message(forwardable(event), payload="json", hostname="aoc host\n1")

    pri, version_and_rest = message.split(b">", 1)
    parts = version_and_rest.split(b" ", 7)
    assert int(pri[1:]) == 13 * 8 + (4 if event.result == "failure" else 5)
    assert parts[0] == b"1"
    assert parts[1] == event.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3].encode() + b"Z"
    assert parts[2] == b"aochost1"  # HOSTNAME is printable US-ASCII only
    assert parts[3:5] == [b"aoc", b"-", event.source.encode()][:2]
    assert parts[5] == event.source.encode()
    key = event_key(forwardable(event))
    structured, payload = (parts[6] + b" " + parts[7]).split(b"] ", 1)
    assert structured + b"]" == f'[aoc@32473 idempotencyKey="{key}"]'.encode()
    assert CanonicalEvent.model_validate(orjson.loads(payload)) == event


def test_a_failed_action_is_a_warning_and_a_successful_one_a_notice(event: CanonicalEvent) -> None:
    failed = event.model_copy(update={"result": "failure"})
    succeeded = event.model_copy(update={"result": "success"})

    assert syslog_message(forwardable(failed), payload="cef", hostname="h").startswith(b"<108>1 ")
    assert syslog_message(forwardable(succeeded), payload="cef", hostname="h").startswith(
        b"<109>1 "
    )


def test_octet_counting_prefixes_the_length_in_bytes_not_characters() -> None:
    message = "<109>1 - - aoc - - - Zoë ⚠".encode()

    framed = octet_counted(message)

    assert framed == str(len(message)).encode() + b" " + message
    assert len(message) != len(message.decode())


def test_cef_escapes_pipes_in_the_header_and_equals_backslashes_and_newlines_in_values(
    event: CanonicalEvent,
) -> None:
    hostile = event.model_copy(
        update={
            "operation": "Set|Mailbox",
            "display_summary": "a=b \\ c\nd|e",
            "actor": Actor(
                type="user", user_principal_name="x=y@contoso.com", ip_address="10.1.2.3"
            ),
        }
    )

    cef = cef_payload(hostile).decode()

    fields = re.split(r"(?<!\\)\|", cef, maxsplit=7)  # split on unescaped pipes only
    header, extension = "|".join(fields[:7]), fields[7]
    assert cef.startswith(f"CEF:0|AOC|Admin Operations Center|schema{SCHEMA_VERSION}|")
    assert f"{event.source}:Set\\|Mailbox" in header
    assert "a=b \\\\ c d\\|e" in header  # Name: | escaped, line break flattened
    assert "\n" not in cef
    assert "msg=a\\=b \\\\ c\\nd|e" in extension
    assert "suser=x\\=y@contoso.com" in extension
    assert "src=10.1.2.3" in extension
    assert f"externalId={event.id}" in extension
    assert f"rt={int(event.timestamp.timestamp() * 1000)}" in extension


def test_cef_puts_an_ipv6_address_in_its_own_field(event: CanonicalEvent) -> None:
    v6 = event.model_copy(update={"actor": Actor(ip_address="2001:db8::1")})

    extension = cef_payload(v6).decode()

    assert "c6a2=2001:db8::1" in extension and " src=" not in extension


def test_syslog_hostname_never_is_empty() -> None:
    assert syslog_hostname("") == "-"
    assert syslog_hostname("h" * 300) == "h" * 255


def test_batches_respect_the_count_and_the_byte_budget_in_order() -> None:
    sizes = [400, 400, 400, 2000, 10, 10, 10, 10, 10]

    batches = plan_batches(sizes, max_items=3, max_bytes=1000, size_of=lambda n: n)

    assert batches == [[400, 400], [400], [2000], [10, 10, 10], [10, 10]]
    assert plan_batches([], max_items=3, max_bytes=1000, size_of=lambda n: n) == []


@pytest.mark.parametrize(
    ("status", "body", "siem_format", "verdict"),
    [
        (200, b"", "json", "accepted"),
        (204, b"", "json", "accepted"),
        (400, b'{"error":"bad field"}', "json", "rejected"),
        (413, b"", "json", "rejected"),
        (422, b"", "json", "rejected"),
        (401, b"", "json", "unavailable"),  # every event would be refused alike: not their fault
        (403, b"", "splunk_hec", "unavailable"),
        (404, b"", "json", "unavailable"),
        (503, b"", "json", "unavailable"),  # what is left after http_retry's retries
        (400, b'{"text":"Invalid data format","code":6}', "splunk_hec", "rejected"),
        (400, b'{"text":"Incorrect index","code":7}', "splunk_hec", "unavailable"),
        (400, b'{"text":"Data channel is missing","code":10}', "splunk_hec", "unavailable"),
    ],
)
def test_a_siem_answer_is_judged_accepted_rejected_or_unavailable(
    status: int, body: bytes, siem_format: str, verdict: str
) -> None:
    assert judge_response(status, body, siem_format=siem_format) == verdict  # type: ignore[arg-type]


def test_hec_invalid_event_number_is_used_only_when_it_points_into_the_batch() -> None:
    assert hec_invalid_event_index(b'{"code":6,"invalid-event-number":2}', 5) == 2
    assert hec_invalid_event_index(b'{"code":6,"invalid-event-number":5}', 5) is None
    assert hec_invalid_event_index(b'{"code":6,"invalid-event-number":true}', 5) is None
    assert hec_invalid_event_index(b"not json", 5) is None
