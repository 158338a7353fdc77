"""Deterministic raw audit records at volume, for the throughput benchmarks: `python bench/generate.py [N]`.

Every source of the registry (`aoc_common.sources`) with samples contributes records shaped like the
bundled samples (the templates `aoc demo` publishes), each with its own record id and a timestamp
spread over 20 days, keyed and enveloped exactly as the collector publishes them. A share of the
records (2 % by default; 1–3 % is what overlapping fetch windows and Management API redeliveries
look like) are byte-identical copies of an earlier record: what the normalizer's dedupe must drop.
The same N and seed always give the same bytes, so two benches (or two runs) compare the same input.

Only templates that the normalizer turns into events are used: a bench counts events out, and a
dead-lettered copy would be counted twice. 1M records take well under a minute on one core.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from aoc_collector.replay import bundled_sample_dir, load_replay_set
from aoc_common.codec import encode
from aoc_common.events import RawEnvelope
from aoc_common.message_log.base import Message, Record
from aoc_common.sources import source_record_id, source_spec
from aoc_common.topics import raw_topic
from aoc_normalizer.core import normalize_message
from aoc_normalizer.mappings import load_mappings

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DUPLICATE_RATE = 0.02
SPREAD_START = datetime(2026, 11, 1, tzinfo=UTC)
SPREAD = timedelta(days=20)
FETCHED_AT = datetime(2026, 11, 22, tzinfo=UTC)
TENANT_ID = "bench-tenant"
RECENT = 10_000  # duplicates copy one of the last RECENT records, as a re-fetched window would


@dataclass(frozen=True, slots=True)
class Template:
    source: str
    topic: str
    payload: dict[str, Any]
    id_field: str
    timestamp_field: str | None


@dataclass
class Generated:
    """Raw messages in publishing order, with what a correct normalizer makes of them."""

    messages: list[tuple[str, Message]] = field(default_factory=list)
    duplicates: int = 0

    @property
    def unique(self) -> int:
        """Events a correct normalizer publishes: every record once, duplicates dropped."""
        return len(self.messages) - self.duplicates

    def per_topic(self) -> Counter[str]:
        return Counter(topic for topic, _ in self.messages)


def templates(samples: Path | None = None) -> list[Template]:
    """One template per sample record that normalizes into an event, for every source replayed."""
    replay = load_replay_set(
        samples or bundled_sample_dir(),
        tenant_id=TENANT_ID,
        fetched_at=FETCHED_AT,
        include_malformed=False,
    )
    mappings = load_mappings(REPO / "mappings.yml")
    found: list[Template] = []
    for envelope in replay.envelopes:
        payload = envelope.payload
        topic = raw_topic(envelope.source)
        record = Record(topic, 0, 0, None, encode(envelope), 0)
        if not hasattr(normalize_message(record, mappings, now=FETCHED_AT), "dedupe_key"):
            continue  # a sample that is dead-lettered on purpose
        if not isinstance(payload, dict) or source_record_id(envelope.source, payload) is None:
            continue
        spec = source_spec(envelope.source)
        stamp = (
            spec.record_time_field if isinstance(payload.get(spec.record_time_field), str) else None
        )
        found.append(Template(envelope.source, topic, payload, spec.record_id_field, stamp))
    if not found:
        raise SystemExit(f"no usable sample records under {samples or bundled_sample_dir()}")
    return found


def generate(
    count: int,
    *,
    seed: int = 7,
    duplicate_rate: float = DEFAULT_DUPLICATE_RATE,
    samples: Path | None = None,
) -> Generated:
    """`count` raw messages (duplicates included), the same for the same arguments."""
    if not 0 <= duplicate_rate < 1:
        raise ValueError("duplicate_rate must be in [0, 1)")
    rng = random.Random(seed)
    shapes = templates(samples)
    generated = Generated()
    # Millions of small acyclic objects: the cyclic collector would rescan them all, again and again.
    collecting = gc.isenabled()
    gc.disable()
    try:
        _fill(generated, count, rng, shapes, duplicate_rate)
    finally:
        if collecting:
            gc.enable()
    return generated


def _fill(
    generated: Generated,
    count: int,
    rng: random.Random,
    shapes: list[Template],
    duplicate_rate: float,
) -> None:
    fetched_at = FETCHED_AT.isoformat()
    spread_s = int(SPREAD.total_seconds())
    messages = generated.messages
    for _ in range(count):
        if messages and rng.random() < duplicate_rate:
            messages.append(messages[-1 - rng.randrange(min(len(messages), RECENT))])
            generated.duplicates += 1
            continue
        shape = shapes[rng.randrange(len(shapes))]
        payload = dict(shape.payload)
        record_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        payload[shape.id_field] = record_id
        if shape.timestamp_field:
            moment = SPREAD_START + timedelta(seconds=rng.randrange(spread_s))
            payload[shape.timestamp_field] = moment.isoformat().replace("+00:00", "Z")
        value = orjson.dumps(
            {
                "source": shape.source,
                "tenant_id": TENANT_ID,
                "fetched_at": fetched_at,
                "payload": payload,
            }
        )
        messages.append((shape.topic, Message(record_id.encode(), value)))


def envelope_of(message: Message) -> RawEnvelope:
    """A generated message read back as the collector's envelope (tests use it to check the shape)."""
    return RawEnvelope.model_validate_json(message.value)


def iter_batches(generated: Generated, size: int = 500) -> Iterator[tuple[str, list[Message]]]:
    """Consecutive runs of messages for one topic, at most `size` long: what a publisher sends at once."""
    batch: list[Message] = []
    topic = ""
    for message_topic, message in generated.messages:
        if batch and (message_topic != topic or len(batch) >= size):
            yield topic, batch
            batch = []
        topic = message_topic
        batch.append(message)
    if batch:
        yield topic, batch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--duplicates", type=float, default=DEFAULT_DUPLICATE_RATE)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    generated = generate(args.count, seed=args.seed, duplicate_rate=args.duplicates)
    elapsed = time.perf_counter() - started
    size = sum(len(m.value) for _, m in generated.messages)
    topics = ", ".join(f"{t} {n}" for t, n in sorted(generated.per_topic().items()))
    print(
        f"generated {len(generated.messages):,} raw records in {elapsed:.1f} s "
        f"({len(generated.messages) / elapsed:,.0f}/s, {size / 1e6:,.0f} MB): "
        f"{generated.duplicates:,} duplicates ({generated.duplicates / max(args.count, 1):.1%}), "
        f"{generated.unique:,} unique; {topics}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
