"""The store sink's fast read of the indexed fields (msgspec) accepts only what the pydantic read
accepts, with the same values; whatever it refuses gets pydantic's answer and dead-letter reason."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from aoc_common import topics
from aoc_common.codec import encode
from aoc_common.consumed_events import decode_events_to_store
from aoc_common.event_store.encoded import (
    IndexedFieldsModel,
    _read_published,
    indexed_fields_of,
)
from aoc_common.events import Actor
from aoc_common.message_log.base import Record
from tests.utils.records import an_event


def published(**changes: object) -> bytes:
    event = an_event(
        "decode",
        category="UserManagement",
        actor_display="admin@contoso.com",
        actor=Actor(type="user", display_name="admin@contoso.com"),
        target_displays=["bob@contoso.com"],
        display_summary="admin@contoso.com added bob@contoso.com",
        raw_text='{"id":"decode"}',
        tags=["vip"],
    )
    document = orjson.loads(encode(event))
    document.update(changes)
    return orjson.dumps(document)


# Records the normalizer could publish, and records it never would: each must be read by the
# fast way exactly as pydantic reads it, or left to pydantic.
CASES = {
    "as published": published(),
    "milliseconds": published(timestamp="2026-11-20T10:00:00.123000Z"),
    "three decimals": published(timestamp="2026-11-20T10:00:00.123Z"),
    "microseconds cut": published(timestamp="2026-11-20T10:00:00.123999Z"),
    "seven decimals": published(timestamp="2026-11-20T10:00:00.9999996Z"),
    "an offset": published(timestamp="2026-11-20T10:00:00.5+02:00"),
    "naive": published(timestamp="2026-11-20T10:00:00"),
    "date only": published(ingested_at="2026-11-20"),
    "epoch number": published(timestamp=1_700_000_000),
    "week date": published(timestamp="2026-W47-5T10:00:00Z"),
    "hour 24": published(timestamp="2026-11-20T24:00:00Z"),
    "bad digits": published(timestamp="2026-11-2xT10:00:00Z"),
    "version as text": published(schema_version="3"),
    "version as float": published(schema_version=3.0),
    "version true": published(schema_version=True),
    "newer version": published(schema_version=4),
    "unknown source": published(source="myspace"),
    "unknown result": published(result="maybe"),
    "empty id": published(id=""),
    "empty key": published(dedupe_key=""),
    "tags null": published(tags=None),
    "tags of numbers": published(tags=[1, 2]),
    "no actor": orjson.dumps({k: v for k, v in orjson.loads(published()).items() if k != "actor"}),
    "actor type odd": published(actor={"type": "robot"}),
    "actor without type": published(actor={}),
    "service number": published(service=5),
    "not an object": b"[1, 2]",
    "malformed": b'{"id": "x", ',
    "big number elsewhere": published().replace(
        b'"raw":{"id":"decode"}', b'"raw":{"n":1000000000000000000000000000000}'
    ),
    "huge float elsewhere": published().replace(b'"raw":{"id":"decode"}', b'"raw":{"n":1e400}'),
    "not utf-8 elsewhere": published().replace(b'"raw":{"id":"decode"}', b'"raw":{"s":"\xff"}'),
    "lone surrogate": published().replace(b'"raw":{"id":"decode"}', b'"raw":{"s":"\\ud800"}'),
    "deep nesting": published().replace(
        b'"raw":{"id":"decode"}', b'"raw":' + b"[" * 3000 + b"]" * 3000
    ),
}


def pydantic_answer(value: bytes) -> object:
    """What the read before msgspec gave: the fields, or the dead-letter reason's detail."""
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        read = lambda: IndexedFieldsModel.model_validate_json(value)  # noqa: E731
    else:
        read = lambda: IndexedFieldsModel.model_validate(document)  # noqa: E731
    try:
        return read().indexed()
    except ValidationError as error:
        return [(e["loc"], e["msg"]) for e in error.errors()]


@pytest.mark.parametrize("name", CASES)
def test_the_fast_read_gives_pydantics_answer(name: str) -> None:
    value = CASES[name]
    expected = pydantic_answer(value)
    fast = _read_published(value)
    if fast is not None:  # the fast way accepted it: pydantic does too, with the same values
        assert fast == expected
    try:
        answer: object = indexed_fields_of(value)
    except ValidationError as error:
        answer = [(e["loc"], e["msg"]) for e in error.errors()]
    assert answer == expected


def test_records_the_normalizer_publishes_take_the_fast_way() -> None:
    for name in ("as published", "milliseconds", "three decimals", "microseconds cut"):
        assert _read_published(CASES[name]) is not None, name
    for name in ("seven decimals", "an offset", "naive", "not utf-8 elsewhere", "unknown source"):
        assert _read_published(CASES[name]) is None, name


def test_the_sink_dead_letters_what_neither_way_can_read_with_pydantics_reason() -> None:
    values = [
        CASES[name] for name in ("as published", "empty key", "tags null", "not utf-8 elsewhere")
    ]
    records = [Record(topics.EVENTS, 0, n, None, value, 0) for n, value in enumerate(values)]

    decoded = decode_events_to_store(records, stage="store")

    assert [e.record.offset for e in decoded.events] == [0]
    reasons = [letter.reason for letter in decoded.dead_letters]
    assert "dedupe_key: String should have at least 1 character" in reasons[0]
    assert "tags: Input should be a valid list" in reasons[1]
    assert reasons[2].startswith("not a canonical event")
