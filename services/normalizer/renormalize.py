"""`aoc renormalize --since T [--remap]`: publish newer versions of stored events, mapped again.

Two reasons to run it. When Graph is down the normalizer publishes events with bare ids and
`enrichment: "pending"`; `aoc renormalize` names them once Graph is back. After `mappings.yml` (or AOC)
changed how records read — labels, results, actors, summaries — `aoc renormalize --remap` brings the
events already stored up to the mapping in force.

Either way it re-reads the raw topics from time T as a fresh, throw-away consumer group (the live
normalizer's group and offsets are untouched, so it can keep running), maps the records again with the
same core, and publishes the new versions to `aoc.events`, keyed by dedupe_key like any version of that
event: the store's upsert replaces the stored version (keeping its tags and comments), and other
consumers receive the newer version in order. It does not dedupe (these are deliberate new versions) and
it never touches dead letters. It reads only what existed when it started, and stops there.

Without `--remap` it publishes only events it could newly name; with `--remap`, every event of the range,
except one whose directory ids Graph must name and cannot now (or enrichment is off): publishing that one
would replace a named version with bare ids, so it is left as it is and counted.

Limits, on purpose: it republishes every event of the range it handles, including ones that did not
change (an identical newer version, with a new `ingested_at`); and it can only reach back as far as the
raw topics' retention.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from aoc_common import topics
from aoc_common.codec import encode, encode_key
from aoc_common.events import CanonicalEvent, utc_now
from aoc_common.logging import get_logger
from aoc_common.message_log import open_message_log
from aoc_common.message_log.base import Message, MessageLog, Record
from aoc_common.settings import Settings
from aoc_normalizer.core import Limits, normalize_batch, unresolved_directory_ids
from aoc_normalizer.enrichment import Enricher, GraphDirectoryObjects, MemoryNameCache
from aoc_normalizer.mappings import Mappings, load_mappings
from aoc_normalizer.runtime import GRAPH_RETRIES, GRAPH_TIMEOUT, limits_from

log = get_logger(__name__)

IDLE_FETCHES = 3  # empty fetches in a row that end the run even if an end offset was overestimated


@dataclass
class RenormalizeReport:
    """What one run did; `still_pending` events keep their pending version until the next run."""

    group: str
    records_read: int = 0
    republished: int = 0
    still_pending: int = 0
    nothing_to_resolve: int = 0
    dead_letters_skipped: int = 0
    remapped: int = 0  # --remap: events republished as the mapping in force maps them
    positions: dict[str, dict[int, int]] = field(default_factory=dict)


async def renormalize(
    message_log: MessageLog,
    mappings: Mappings,
    enricher: Enricher | None,
    *,
    since: datetime,
    limits: Limits | None = None,
    group: str | None = None,
    batch_size: int = 500,
    remap: bool = False,
) -> RenormalizeReport:
    """Re-read the raw topics from `since` up to their end at the start, and republish named events
    (every event the mapping in force maps, with `remap`)."""
    if not remap and (enricher is None or not enricher.enabled):
        raise ValueError(
            "renormalize needs enrichment: set ENRICHMENT_ENABLED=true and credentials"
        )
    report = RenormalizeReport(group or f"{topics.NORMALIZER_GROUP}-renormalize-{time.time_ns()}")
    ends = {topic: await message_log.end_offsets(topic) for topic in topics.RAW_TOPICS}
    for topic in topics.RAW_TOPICS:
        report.positions[topic] = await message_log.reset_group(
            report.group, topic, to_timestamp=since
        )
    async with message_log.subscribe(topics.RAW_TOPICS, report.group) as subscription:
        idle = 0
        while idle < IDLE_FETCHES and not _caught_up(report.positions, ends):
            records = await subscription.fetch(batch_size, 1.0)
            if not records:
                idle += 1
                continue
            idle = 0
            wanted = [r for r in records if r.offset < ends[r.topic].get(r.partition, 0)]
            await _republish(
                message_log, mappings, enricher, wanted, limits or Limits(), report, remap=remap
            )
            await subscription.commit(records)
            for record in records:
                positions = report.positions[record.topic]
                positions[record.partition] = max(
                    positions.get(record.partition, 0), record.offset + 1
                )
    log.info(
        "renormalize finished",
        group=report.group,
        read=report.records_read,
        republished=report.republished,
        remapped=report.remapped,
        still_pending=report.still_pending,
    )
    return report


async def _republish(
    message_log: MessageLog,
    mappings: Mappings,
    enricher: Enricher | None,
    records: Sequence[Record],
    limits: Limits,
    report: RenormalizeReport,
    *,
    remap: bool = False,
) -> None:
    now = utc_now()
    events, dead = normalize_batch(records, mappings, now=now, limits=limits)
    report.records_read += len(records)
    report.dead_letters_skipped += len(dead)
    candidates = [e for e in events if unresolved_directory_ids(e)]
    report.nothing_to_resolve += len(events) - len(candidates)
    complete: list[CanonicalEvent] = []
    if candidates and enricher is not None and enricher.enabled:
        named = await enricher.enrich(candidates, mappings, now)
        complete = [e for e in named if e.enrichment == "complete"]
    report.still_pending += len(candidates) - len(complete)
    remapped = [e for e in events if not unresolved_directory_ids(e)] if remap else []
    report.remapped += len(remapped)
    publish = remapped + complete
    if publish:
        await message_log.publish(
            topics.EVENTS, [Message(encode_key(e.dedupe_key), encode(e)) for e in publish]
        )
        report.republished += len(publish)


def _caught_up(positions: dict[str, dict[int, int]], ends: dict[str, dict[int, int]]) -> bool:
    return all(
        positions[topic].get(partition, 0) >= end
        for topic, partition_ends in ends.items()
        for partition, end in partition_ends.items()
    )


async def run_renormalize(settings: Settings, since: datetime, *, remap: bool = False) -> int:
    """`aoc renormalize --since T [--remap]` with the configured engines (and Graph when enrichment
    is configured); returns the exit code: 1 when events were left as they are for want of names."""
    from aoc_normalizer.service import token_source

    if not remap and not settings.enrichment_enabled:
        print(
            "renormalize needs ENRICHMENT_ENABLED=true (with TENANT_ID, CLIENT_ID, CLIENT_SECRET); "
            "to bring stored events up to the mapping in force, use --remap",
            file=sys.stderr,
        )
        return 2
    message_log = open_message_log(settings, client_id="aoc-renormalize")
    await message_log.start()
    try:
        async with httpx.AsyncClient(timeout=GRAPH_TIMEOUT) as client:
            enricher = None
            if settings.enrichment_enabled:
                tokens = token_source(settings, client)
                assert tokens is not None  # enrichment is enabled
                enricher = Enricher(
                    GraphDirectoryObjects(client, tokens, settings.graph_base_url, GRAPH_RETRIES),
                    MemoryNameCache(),
                )
            report = await renormalize(
                message_log,
                load_mappings(settings.mappings_path),
                enricher,
                since=since,
                limits=limits_from(settings),
                remap=remap,
            )
    finally:
        await message_log.stop()
    remapped = f"; {report.remapped} remapped" if remap else ""
    print(
        f"renormalize: read {report.records_read} raw records since {since.isoformat()}; "
        f"republished {report.republished} events{remapped}; {report.still_pending} still "
        f"pending (left as they are); {report.nothing_to_resolve} had no names to resolve"
    )
    return 0 if report.still_pending == 0 else 1
