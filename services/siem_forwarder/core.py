"""SIEM forwarder logic without I/O: decode `aoc.events` records, build what each SIEM format expects,
split batches, and read a SIEM's answer.

Formats (documented in README, "Forwarding to a SIEM"):
- `json`: one HTTP POST per batch, body `{"count": n, "events": [CanonicalEvent, ...]}`;
- `splunk_hec`: one HTTP POST per batch of HEC event envelopes (`{"time", "host", "source",
  "sourcetype", "index", "event"}`), one per line;
- `syslog`: one RFC 5424 message per event with a CEF or JSON payload, framed by octet counting
  (RFC 6587) for TCP.
An optional HMAC-SHA256 signature of the exact body bytes goes with every HTTP request.

Idempotency keys let a receiver drop the copies that at-least-once delivery sends: each event's key is
a hash of its exact bytes (a copy has the same key; a newer version of the event, e.g. from
`aoc renormalize`, has a new one), and a batch's key is a hash of its events' keys (the HTTP header
`Idempotency-Key`). Where each format carries them is documented in the README.

The event JSON is forwarded byte for byte as it was published on `aoc.events` (after validation), so the
SIEM receives the documented CanonicalEvent schema. Nothing here sends, sleeps or reads a clock.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
import re
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar

import orjson

from aoc_common.consumed_events import (
    ConsumedEvent,
    DecodedEvents,
    DecodedToPassOn,
    PassedOnEvent,
    dead_letter_for_record,
    decode_canonical_events,
    decode_events_to_pass_on,
)
from aoc_common.dead_letter import DeadLetter
from aoc_common.event_store.encoded import IndexedFields
from aoc_common.events import SCHEMA_VERSION, CanonicalEvent
from aoc_common.message_log.base import Record

STAGE = "siem_forwarder"

SIGNATURE_HEADER = "X-AOC-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
HEC_KEY_FIELD = "aoc_idempotency_key"
# RFC 5424 structured data of a JSON-payload syslog message; 32473 is the example enterprise number
# RFC 5612 reserves for documentation and private use.
SYSLOG_SD_ID = "aoc@32473"

SiemFormat = Literal["json", "splunk_hec", "syslog"]
SyslogPayload = Literal["cef", "json"]
Verdict = Literal["accepted", "rejected", "unavailable"]

T = TypeVar("T")

# What a transport sends: a whole validated event (CEF, ECS and OCSF are built from the model) or an
# event passed on as published, its header fields checked (AOC's own JSON: the bytes are sent as they are).
ForwardedEvent = ConsumedEvent | PassedOnEvent


def decode_batch(records: Sequence[Record]) -> DecodedEvents:
    """Every record becomes an event to forward or a dead letter saying why it cannot be forwarded."""
    return decode_canonical_events(records, stage=STAGE, reader="forwarder")


def decode_to_pass_on(records: Sequence[Record]) -> DecodedToPassOn:
    """Like `decode_batch` for a transport that sends the published bytes: the same dead letters for
    records without a usable id, time, source or schema version, without rebuilding the whole model."""
    return decode_events_to_pass_on(records, stage=STAGE, reader="forwarder")


def whole_event(item: ForwardedEvent) -> CanonicalEvent:
    """The validated model, for formats built from it; the runtime decodes whole events for them."""
    if not isinstance(item, ConsumedEvent):
        raise TypeError("this format is built from the whole event: decode with decode_batch")
    return item.event


def dead_letter_for(record: Record, reason: str) -> DeadLetter:
    return dead_letter_for_record(record, reason, stage=STAGE)


def rejected_by_siem(record: Record, status: int, response: str) -> DeadLetter:
    """The dead letter of an event the SIEM refused on its own: keeps the SIEM's answer."""
    return dead_letter_for(record, f"SIEM rejected the event: HTTP {status}: {response[:1500]}")


# --- idempotency keys and backoff ---------------------------------------------------------------------


def event_key(item: ForwardedEvent) -> str:
    """128 bits of SHA-256 over the event's exact bytes: every copy of this version has this key."""
    return hashlib.sha256(item.json).hexdigest()[:32]


def batch_key(events: Sequence[ForwardedEvent]) -> str:
    """The key of a batch: the same events in the same order give the same key."""
    return hashlib.sha256("\n".join(event_key(e) for e in events).encode()).hexdigest()[:32]


def growing_backoff_s(failures: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff with jitter that never shrinks: uniform between the previous ceiling and this one.

    The n-th wait lies in [c(n-1), c(n)] for c(n) = min(cap, base·2^(n-1)) (the first in [base/2, base]),
    so every wait is at least as long as any wait before it, yet forwarders that failed together
    spread out; at the cap every wait is the cap.
    """
    ceiling = min(cap_s, base_s * 2 ** max(0, failures - 1))
    floor = min(cap_s, base_s * 2 ** (failures - 2)) if failures > 1 else base_s / 2
    return rng.uniform(floor, ceiling)


# --- batching ----------------------------------------------------------------------------------------


def plan_batches(
    items: Sequence[T], *, max_items: int, max_bytes: int, size_of: Callable[[T], int]
) -> list[list[T]]:
    """Split `items`, in order, into batches of at most `max_items` and about `max_bytes`.

    An item larger than `max_bytes` travels alone (the SIEM then accepts or rejects it on its own merits).
    """
    batches: list[list[T]] = []
    current: list[T] = []
    current_bytes = 0
    for item in items:
        size = size_of(item)
        if current and (len(current) >= max_items or current_bytes + size > max_bytes):
            batches.append(current)
            current, current_bytes = [], 0
        current.append(item)
        current_bytes += size
    if current:
        batches.append(current)
    return batches


# --- generic JSON webhook and Splunk HEC ---------------------------------------------------------------


def json_batch_body(events: Sequence[ForwardedEvent]) -> bytes:
    """`{"count": n, "idempotency_key": …, "event_keys": [...], "events": [...]}`.

    The events are spliced in as published (already valid JSON); `event_keys[i]` is the key of
    `events[i]`.
    """
    keys = orjson.dumps([event_key(e) for e in events])
    return (
        b'{"count":%d,"idempotency_key":"%s","event_keys":%s,"events":['
        % (len(events), batch_key(events).encode(), keys)
        + b",".join(e.json for e in events)
        + b"]}"
    )


def hec_envelope(item: ForwardedEvent, *, host: str, sourcetype: str, index: str | None) -> bytes:
    """One Splunk HEC event: `time` is the admin action's time (epoch seconds, millisecond precision)."""
    meta: dict[str, object] = {
        "time": round(item.event.timestamp.timestamp(), 3),
        "host": host,
        "source": f"aoc:{item.event.source}",
        "sourcetype": sourcetype,
    }
    if index:
        meta["index"] = index
    # An indexed field (HEC event endpoint): searchable as `aoc_idempotency_key::<key>`, `dedup`-able.
    meta["fields"] = {HEC_KEY_FIELD: event_key(item)}
    return orjson.dumps(meta)[:-1] + b',"event":' + item.json + b"}"


def hec_body(
    events: Sequence[ForwardedEvent], *, host: str, sourcetype: str, index: str | None
) -> bytes:
    """HEC's batch format: event envelopes one after the other (here one per line)."""
    return b"\n".join(
        hec_envelope(e, host=host, sourcetype=sourcetype, index=index) for e in events
    )


def hmac_signature(secret: bytes, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over the exact body bytes (GitHub-style, so receivers know it)."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


# HEC answers 400 for a bad event AND for a bad setting; the settings kind concerns every event, so those
# events must wait for an operator instead of flooding the DLQ. Codes from Splunk's HEC documentation:
# 7 incorrect index, 10 data channel missing, 11 invalid data channel, 14 ACK disabled.
HEC_CONFIGURATION_CODES = frozenset({7, 10, 11, 14})

# 4xx statuses that judge the content of a request, so a smaller request may pass; other 4xx (401, 403,
# 404, 405…) say the SIEM or its address is misconfigured and would reject every event alike.
CONTENT_REJECTIONS = frozenset({400, 413, 422})


def judge_response(status: int, body: bytes, *, siem_format: SiemFormat) -> Verdict:
    """What an HTTP answer (after http_retry's retries) means for the batch that got it."""
    if 200 <= status < 300:
        return "accepted"
    if status not in CONTENT_REJECTIONS:
        return "unavailable"
    if siem_format == "splunk_hec" and _hec_code(body) in HEC_CONFIGURATION_CODES:
        return "unavailable"
    return "rejected"


def hec_invalid_event_index(body: bytes, batch_size: int) -> int | None:
    """HEC's `invalid-event-number` (0-based position of the bad event), when it gives a usable one."""
    answer = _json_object(body)
    position = answer.get("invalid-event-number") if answer else None
    if isinstance(position, int) and not isinstance(position, bool) and 0 <= position < batch_size:
        return position
    return None


def _hec_code(body: bytes) -> int | None:
    answer = _json_object(body)
    code = answer.get("code") if answer else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _json_object(body: bytes) -> dict[str, object] | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


# --- syslog: RFC 5424 messages, CEF or JSON payload, RFC 6587 octet-counting frames -------------------

FACILITY_LOG_AUDIT = 13
SEVERITY_WARNING = 4
SEVERITY_NOTICE = 5
APP_NAME = "aoc"
CEF_VENDOR = "AOC"
CEF_PRODUCT = "Admin Operations Center"
CEF_VERSION = f"schema{SCHEMA_VERSION}"

_NOT_PRINTUSASCII = re.compile(r"[^\x21-\x7e]")


def syslog_hostname(name: str) -> str:
    """RFC 5424 HOSTNAME: 1-255 printable US-ASCII characters, `-` (NILVALUE) when there is none."""
    cleaned = _NOT_PRINTUSASCII.sub("", name)[:255]
    return cleaned or "-"


def syslog_severity(event: CanonicalEvent | IndexedFields) -> int:
    """A failed admin action is a warning; a successful one is normal but significant (notice)."""
    return SEVERITY_WARNING if event.result == "failure" else SEVERITY_NOTICE


def syslog_message(item: ForwardedEvent, *, payload: SyslogPayload, hostname: str) -> bytes:
    """`<PRI>1 TIMESTAMP HOSTNAME aoc - MSGID SD MSG`: facility log audit (13), MSGID the event's source.

    TIMESTAMP is the admin action's time, so the SIEM orders events by when they happened. The event's
    idempotency key travels in the CEF extension (`cs6`) or, for a JSON payload, whose bytes are the
    event as published, in structured data `[aoc@32473 idempotencyKey="…"]`; CEF messages keep no
    structured data (`-`). No BOM: many receivers mishandle one.
    """
    event = item.event
    pri = FACILITY_LOG_AUDIT * 8 + syslog_severity(event)
    stamp = (
        event.timestamp.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{event.timestamp.microsecond // 1000:03d}Z"
    )
    key = event_key(item)
    structured = "-" if payload == "cef" else f'[{SYSLOG_SD_ID} idempotencyKey="{key}"]'
    header = (
        f"<{pri}>1 {stamp} {syslog_hostname(hostname)} {APP_NAME} - {event.source} {structured} "
    )
    body = cef_payload(whole_event(item), idempotency_key=key) if payload == "cef" else item.json
    return header.encode("ascii") + body


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 octet-counting frame: `<length> <message>`, so a message may hold any byte."""
    return b"%d " % len(message) + message


def cef_payload(event: CanonicalEvent, *, idempotency_key: str | None = None) -> bytes:
    """ArcSight Common Event Format: `CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|Ext`."""
    severity = 6 if event.result == "failure" else 3
    header = "|".join(
        _cef_header(part)
        for part in (
            CEF_VENDOR,
            CEF_PRODUCT,
            CEF_VERSION,
            f"{event.source}:{event.operation}"[:1023],
            event.display_summary[:512],
            str(severity),
        )
    )
    actor = event.actor
    extension: list[tuple[str, str | None]] = [
        ("rt", str(int(event.timestamp.timestamp() * 1000))),
        ("act", event.operation),
        ("cat", event.category),
        ("outcome", event.result),
        ("suser", actor.user_principal_name or actor.display_name or event.actor_display),
        ("suid", actor.id),
        *_cef_address(actor.ip_address),
        ("duser", ", ".join(event.target_displays) or None),
        ("msg", event.display_summary),
        ("externalId", event.id),
        ("cs1Label", "service"),
        ("cs1", event.service),
        ("cs2Label", "tenantId"),
        ("cs2", event.tenant_id),
        ("cs3Label", "dedupeKey"),
        ("cs3", event.dedupe_key),
        ("cs4Label", "source"),
        ("cs4", event.source),
        ("cs6Label", "idempotencyKey" if idempotency_key else None),
        ("cs6", idempotency_key),
    ]
    pairs = " ".join(
        f"{key}={_cef_value(value[:4000])}" for key, value in extension if value is not None
    )
    return f"CEF:0|{header}|{pairs}".encode()


def _cef_address(ip: str | None) -> list[tuple[str, str | None]]:
    """`src` holds IPv4 only in CEF; an IPv6 address goes to the custom IPv6 field c6a2."""
    if not ip:
        return []
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return [("cs5Label", "sourceAddress"), ("cs5", ip)]
    if address.version == 4:
        return [("src", ip)]
    return [("c6a2Label", "Source IPv6 Address"), ("c6a2", ip)]


def _cef_header(value: str) -> str:
    """Header fields escape `\\` and `|`; a line break would end the record, so it becomes a space."""
    return (
        value.replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("\r\n", " ")
        .replace("\n", " ")
        .replace("\r", " ")
    )


def _cef_value(value: str) -> str:
    """Extension values escape `\\` and `=`, and line breaks as `\\n` / `\\r`."""
    return (
        value.replace("\\", "\\\\")
        .replace("=", "\\=")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )
