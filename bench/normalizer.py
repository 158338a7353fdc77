"""Events per second through the normalizer core on one core (no I/O), with records shaped like the
fixtures: `python bench/normalizer.py [N]` (default 100,000)."""

from __future__ import annotations

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
from aoc_normalizer.core import normalize_message
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


if __name__ == "__main__":
    main()
