"""`aoc renormalize --remap` brings events already published up to the mapping in force (issue 9.7):
the raw records are mapped again and the new versions published under the same dedupe keys."""

from __future__ import annotations

from pathlib import Path

import orjson

from aoc_common import topics
from aoc_common.engines import Engines
from aoc_common.message_log.base import Message
from aoc_normalizer.core import normalize_message
from aoc_normalizer.mappings import load_mappings, parse_mappings
from aoc_normalizer.renormalize import renormalize
from tests.utils.fake_graph import directory_record
from tests.utils.records import FETCHED_AT, NOW, raw_record
from tests.utils.topic_io import read_topic

REPO = Path(__file__).resolve().parents[2]
SHIPPED = (REPO / "mappings.yml").read_text(encoding="utf-8")

SET_MAILBOX = {
    "CreationTime": "2026-11-14T08:00:00",
    "Id": "5f0c4d8e-0000-4000-8000-000000000001",
    "Operation": "Set-Mailbox",
    "RecordType": 1,
    "ResultStatus": "True",
    "UserId": "alice.admin@contoso.com",
    "Workload": "Exchange",
    "ObjectId": "dana.park@contoso.com",
    "Parameters": '-Identity "dana.park@contoso.com" -ForwardingSmtpAddress "smtp:x@example.net"',
}


async def test_remap_republishes_every_event_as_the_mapping_in_force_maps_it(
    engines: Engines,
) -> None:
    # What the events read like under an older mapping: a different label and sentence.
    older = parse_mappings(
        SHIPPED.replace('"1": Exchange admin', '"1": Exchange cmdlet').replace(
            '- "{actor} changed mailbox {target} ({detail})"', '- "{actor} ran Set-Mailbox"'
        )
    )
    current = load_mappings(REPO / "mappings.yml")
    record = raw_record("unified", SET_MAILBOX)
    before = normalize_message(record, older, now=NOW)
    assert before.category == "Exchange cmdlet"  # type: ignore[union-attr]
    bare_ids = raw_record(
        "directory", directory_record("Dir_B", actor_id="a" * 8, target_id="b" * 8)
    )
    message_log = engines.message_log
    await message_log.publish(topics.raw_topic("unified"), [Message(b"u1", record.value)])
    await message_log.publish(topics.raw_topic("directory"), [Message(b"d1", bare_ids.value)])

    report = await renormalize(message_log, current, None, since=FETCHED_AT, remap=True)

    assert (report.records_read, report.remapped, report.still_pending) == (2, 1, 1)
    [published] = await read_topic(message_log, topics.EVENTS, 1)
    event = orjson.loads(published.value)
    assert published.key == f"unified:{SET_MAILBOX['Id']}".encode()
    assert event["dedupe_key"] == before.dedupe_key  # type: ignore[union-attr]
    assert event["category"] == "Exchange admin"
    assert event["display_summary"] == (
        "alice.admin@contoso.com changed mailbox dana.park@contoso.com "
        "(ForwardingSmtpAddress=smtp:x@example.net)"
    )
    # The directory event needs Graph for its names: left as it is rather than replaced by ids.
    assert all(r.key != b"directory:Dir_B" for r in await read_topic(message_log, topics.EVENTS, 1))
