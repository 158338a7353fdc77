"""Events per second through the normalizer core on one core (no I/O), with records shaped like the
samples: `python bench/normalizer.py [N] [--source ID ...]` (default 100,000 records of every
source; `--source signins` for Entra sign-ins only, repeat it for a mix).

Four figures, measured in the same run: two floors — decoding each raw message and encoding a
document of its size (what any normalizer pays on this machine), and pydantic validation of the
finished canonical event plus its JSON dump (what any producer of `CanonicalEvent`s pays at least) —
then `normalize_message` one record at a time, and what both runtimes run per batch of 500
(`normalize_batch` + the dedupe decisions against the keys seen so far). Enrichment is off (it is
I/O: Graph and its cache), as in the demo.

The core and both floors take turns on the same slices of records, so that all three see the same
load on a shared machine, and are timed in CPU seconds of this process (what other processes do to
the wall clock is not this code's cost); their figures are the medians of the rounds. The batch
figure is one pass, also in CPU seconds."""

from __future__ import annotations

import argparse
import gc
import random
import statistics
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


ROUNDS = 5


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
    documents = [
        e.model_dump()
        for e in (normalize_message(r, mappings, now=now) for r in records)
        if isinstance(e, CanonicalEvent)
    ]
    gc.collect()
    gc.freeze()
    size = max(1, count // ROUNDS)
    copy_rates: list[float] = []
    core_rates: list[float] = []
    floor_rates: list[float] = []
    copied = 0
    for round_ in range(ROUNDS):
        chunk = records[round_ * size : (round_ + 1) * size]
        started = time.process_time()
        copied += sum(len(orjson.dumps(orjson.loads(r.value))) for r in chunk)
        copy_rates.append(len(chunk) / (time.process_time() - started))
        started = time.process_time()
        for record in chunk:
            normalize_message(record, mappings, now=now)
        core_rates.append(len(chunk) / (time.process_time() - started))
        floor_chunk = documents[round_ * size : (round_ + 1) * size]
        started = time.process_time()
        for document in floor_chunk:
            encode(CanonicalEvent.model_validate(document))
        floor_rates.append(len(floor_chunk) / (time.process_time() - started))
    copy_rate = statistics.median(copy_rates)
    core_rate, floor_rate = statistics.median(core_rates), statistics.median(floor_rates)
    ratios = sorted(f / c for f, c in zip(floor_rates, core_rates, strict=True))
    print(
        f"floor (decode + encode each message, no mapping): {copy_rate:,.0f} records/s "
        f"on one core ({copied / (size * ROUNDS):,.0f} bytes per record)"
    )
    print(
        f"normalizer core: {core_rate:,.0f} events/s on one core (median of {ROUNDS} rounds of "
        f"{size} records; {len(documents)} events, {count - len(documents)} dead letters)"
    )
    print(
        f"floor (same rounds): CanonicalEvent.model_validate + JSON dump: {floor_rate:,.0f} "
        f"events/s; the core costs {statistics.median(ratios):.2f}x this floor "
        f"(rounds {ratios[0]:.2f}-{ratios[-1]:.2f})"
    )
    del documents

    window = DedupeWindow()
    at_ms = now_ms(now)
    seen: dict[str, int] = {}
    published = 0
    started = time.process_time()
    for start in range(0, count, 500):
        events_in_batch, _ = normalize_batch(records[start : start + 500], mappings, now=now)
        keys = [e.dedupe_key for e in events_in_batch]
        fresh = window.first_sightings(keys, seen, at_ms)
        published += sum(fresh)
        seen.update(
            (k, at_ms) for k, keep in zip(keys, fresh, strict=True) if keep and len(seen) % 2
        )
    elapsed = time.process_time() - started
    print(
        f"normalize_batch + dedupe, batches of 500: {count / elapsed:,.0f} events/s on one core "
        f"(CPU time, one pass; {published} published)"
    )


if __name__ == "__main__":
    main()
