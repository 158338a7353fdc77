"""Events per second through the normalizer core on one core (no I/O), with records shaped like the
fixtures: `python bench/normalizer.py [N]` (default 100,000).

Two figures: `normalize_message` one record at a time, and what both runtimes run per batch of 500
(`normalize_batch` + the dedupe decisions against the keys seen so far). Enrichment is
off (it is I/O: Graph and its cache), as in the demo."""

from __future__ import annotations

import gc
import json
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aoc_common.codec import encode
from aoc_common.events import RawEnvelope, Source
from aoc_common.message_log.base import Record
from aoc_common.topics import raw_topic
from aoc_normalizer.core import normalize_batch, normalize_message
from aoc_normalizer.dedupe import DedupeWindow, now_ms
from aoc_normalizer.mappings import load_mappings

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "services" / "collector" / "sample_data"
ID_FIELD = {"directory": "id", "intune": "id", "unified": "Id"}


def templates() -> list[tuple[Source, dict]]:
    pages = sorted(SAMPLES.glob("graph_directory_audits_page*.json"))
    found: list[tuple[Source, dict]] = []
    for page in pages:
        found += [("directory", r) for r in json.loads(page.read_text())["value"]]
    intune = json.loads((SAMPLES / "graph_intune_audit_events.json").read_text())["value"]
    found += [("intune", r) for r in intune]
    feed = json.loads((SAMPLES / "o365_management_activity.json").read_text())
    found += [("unified", r) for blob in feed["blobs"].values() for r in blob]
    return found


def synthetic_records(count: int) -> list[Record]:
    rng = random.Random(7)
    shapes = templates()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    fetched = datetime(2026, 11, 22, tzinfo=UTC)
    records = []
    for offset in range(count):
        source, template = rng.choice(shapes)
        payload = dict(template)
        payload[ID_FIELD[source]] = str(uuid.UUID(int=rng.getrandbits(128)))
        stamp = (start + timedelta(seconds=rng.randrange(20 * 86400))).isoformat()
        payload["CreationTime" if source == "unified" else "activityDateTime"] = stamp
        envelope = RawEnvelope(
            source=source, tenant_id="contoso", fetched_at=fetched, payload=payload
        )
        records.append(Record(raw_topic(source), 0, offset, None, encode(envelope), 0))
    return records


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    mappings = load_mappings(REPO / "mappings.yml")
    records = synthetic_records(count)
    # The 100k prepared inputs are a benchmark artefact (a runtime holds one batch): keep the garbage
    # collector from re-scanning them on every collection, which would otherwise cost a third.
    gc.collect()
    gc.freeze()
    now = datetime(2026, 11, 23, tzinfo=UTC)
    started = time.perf_counter()
    events = sum(
        1 for r in records if hasattr(normalize_message(r, mappings, now=now), "dedupe_key")
    )
    elapsed = time.perf_counter() - started
    print(
        f"normalizer core: {count} records in {elapsed:.2f} s = {count / elapsed:,.0f} events/s "
        f"on one core ({events} events, {count - events} dead letters)"
    )

    window = DedupeWindow()
    at_ms = now_ms(now)
    seen: dict[str, int] = {}
    published = 0
    started = time.perf_counter()
    for start in range(0, count, 500):
        events_in_batch, _ = normalize_batch(records[start : start + 500], mappings, now=now)
        keys = [e.dedupe_key for e in events_in_batch]
        fresh = window.first_sightings(keys, seen, at_ms)
        published += sum(fresh)
        seen.update(
            (k, at_ms) for k, keep in zip(keys, fresh, strict=True) if keep and len(seen) % 2
        )
    elapsed = time.perf_counter() - started
    print(
        f"normalize_batch + dedupe, batches of 500: {count / elapsed:,.0f} events/s on one core "
        f"({published} published)"
    )


if __name__ == "__main__":
    main()
