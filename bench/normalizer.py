"""Events per second through the normalizer core on one core (no I/O), with records shaped like the
samples: `python bench/normalizer.py [N] [--source ID ...]` (default 100,000 records of every
source; `--source signins` for Entra sign-ins only, repeat it for a mix).

Four figures, measured in the same run: two floors — decoding each raw message and encoding a
document of its size (what any normalizer pays on this machine), and pydantic validation of the
finished canonical event plus its JSON dump (what any producer of `CanonicalEvent`s pays at least) —
then `normalize_message` one record at a time, and what both runtimes run per batch of 500
(`normalize_batch` + the dedupe decisions against the keys seen so far). Enrichment is off (it is
I/O: Graph and its cache), as in the demo."""

from __future__ import annotations

import argparse
import gc
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from aoc_common.codec import encode
from aoc_common.events import CanonicalEvent, RawEnvelope, Source
from aoc_common.message_log.base import Record
from aoc_common.sources import SOURCES, all_sources, source_spec
from aoc_common.sources.samples import sample_records
from aoc_common.topics import raw_topic
from aoc_normalizer.core import normalize_batch, normalize_message
from aoc_normalizer.dedupe import DedupeWindow, now_ms
from aoc_normalizer.mappings import load_mappings

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "services" / "collector" / "sample_data"


def templates(sources: tuple[str, ...] = SOURCES) -> list[tuple[Source, dict]]:
    """Every sample record of `sources`, as the shapes synthetic records copy."""
    return [
        (spec.id, record)
        for spec in all_sources()
        if spec.id in sources
        for record in sample_records(spec, SAMPLES)
    ]


def synthetic_records(count: int, sources: tuple[str, ...] = SOURCES) -> list[Record]:
    rng = random.Random(7)
    shapes = templates(sources)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    fetched = datetime(2026, 11, 22, tzinfo=UTC)
    records = []
    for offset in range(count):
        source, template = rng.choice(shapes)
        payload = dict(template)
        spec = source_spec(source)
        payload[spec.record_id_field] = str(uuid.UUID(int=rng.getrandbits(128)))
        stamp = (start + timedelta(seconds=rng.randrange(20 * 86400))).isoformat()
        payload[spec.record_time_field] = stamp
        envelope = RawEnvelope(
            source=source, tenant_id="contoso", fetched_at=fetched, payload=payload
        )
        records.append(Record(raw_topic(source), 0, offset, None, encode(envelope), 0))
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=100_000)
    parser.add_argument("--source", action="append", choices=SOURCES, dest="sources")
    arguments = parser.parse_args()
    count = arguments.count
    sources = tuple(arguments.sources or SOURCES)
    mappings = load_mappings(REPO / "mappings.yml")
    records = synthetic_records(count, sources)
    # The 100k prepared inputs are a benchmark artefact (a runtime holds one batch): keep the garbage
    # collector from re-scanning them on every collection, which would otherwise cost a third.
    gc.collect()
    gc.freeze()
    now = datetime(2026, 11, 23, tzinfo=UTC)
    print(f"sources: {', '.join(sources)}")
    started = time.perf_counter()
    copied = sum(len(orjson.dumps(orjson.loads(r.value))) for r in records)
    elapsed = time.perf_counter() - started
    print(
        f"floor (decode + encode each message, no mapping): {count / elapsed:,.0f} records/s "
        f"on one core ({copied / count:,.0f} bytes per record)"
    )
    started = time.perf_counter()
    events = sum(
        isinstance(normalize_message(r, mappings, now=now), CanonicalEvent) for r in records
    )
    elapsed = time.perf_counter() - started
    core_rate = count / elapsed
    print(
        f"normalizer core: {count} records in {elapsed:.2f} s = {core_rate:,.0f} events/s "
        f"on one core ({events} events, {count - events} dead letters)"
    )

    sample = [normalize_message(r, mappings, now=now) for r in records[:20_000]]
    documents = [e.model_dump() for e in sample if isinstance(e, CanonicalEvent)]
    del sample
    gc.collect()
    gc.freeze()
    started = time.perf_counter()
    for document in documents:
        encode(CanonicalEvent.model_validate(document))
    elapsed = time.perf_counter() - started
    floor_rate = len(documents) / elapsed
    print(
        f"floor (same run): CanonicalEvent.model_validate + JSON dump: {floor_rate:,.0f} events/s; "
        f"the core costs {floor_rate / core_rate:.2f}x the floor"
    )
    del documents

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
