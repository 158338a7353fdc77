"""Synthetic canonical events for the store benches (bench/api.py, bench/store_sink.py).

Events are the fixture events (normalized by the real core) cloned with new ids, 2,000 actors and a
few rare words, so that filters and searches have realistic selectivity. Two time shapes:
- `spread`: timestamps anywhere in 90 days (a store that has been running for a while: what the
  API bench queries);
- `arrival`: timestamps rising with the ingestion order, a minute or two of jitter (what a sink
  receives from collectors or a replay), plus re-deliveries of recent keys (the upsert path).
"""

from __future__ import annotations

import random
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aoc_common.events import CanonicalEvent, event_id_for  # noqa: E402
from tests.utils.records import fixture_events  # noqa: E402

SAMPLES = REPO / "services" / "collector" / "sample_data"
NEWEST = datetime(2026, 11, 20, tzinfo=UTC)
SPAN_S = 90 * 86_400
RARE_WORDS = ("exfiltration", "quarantine", "breakglass", "impossibletravel")
ACTORS = [f"user{n:04}@contoso.com" for n in range(2_000)]
# Re-deliveries pick a key among this many recent ones (a replayed page, a retried batch).
RECENT_KEYS = 10_000

TimeShape = Literal["spread", "arrival"]


def synthetic_events(
    count: int,
    *,
    batch_size: int = 5_000,
    seed: int = 11,
    shape: TimeShape = "spread",
    duplicates: float = 0.0,
) -> Iterator[list[CanonicalEvent]]:
    """Batches of `count` events (re-deliveries included); about 1 in 1,000 carries a rare word.

    With `duplicates` > 0 that share of events is a recent event sent again, unchanged, as
    overlapping fetch windows, a retried batch or a replay deliver it."""
    rng = random.Random(seed)
    templates = fixture_events(SAMPLES)
    recent: list[CanonicalEvent] = []
    batch: list[CanonicalEvent] = []
    start = NEWEST - timedelta(seconds=SPAN_S)
    for n in range(count):
        if recent and rng.random() < duplicates:
            batch.append(rng.choice(recent))
            if len(batch) == batch_size or n == count - 1:
                yield batch
                batch = []
            continue
        template = rng.choice(templates)
        key = f"bench:{uuid.UUID(int=rng.getrandbits(128))}"
        actor = rng.choice(ACTORS) if rng.random() < 0.7 else template.actor_display
        summary = template.display_summary
        if rng.random() < 0.001:
            summary += f" ({rng.choice(RARE_WORDS)})"
        if shape == "spread":
            at = NEWEST - timedelta(seconds=rng.randrange(SPAN_S))
        else:
            at = start + timedelta(seconds=SPAN_S * n / count - rng.randrange(120))
        event = template.model_copy(
            update={
                "id": event_id_for(key),
                "dedupe_key": key,
                "timestamp": at,
                "actor_display": actor,
                "display_summary": summary,
                "tags": ["reviewed"] if rng.random() < 0.01 else [],
            }
        )
        batch.append(event)
        if duplicates:
            recent.append(event)
            if len(recent) > RECENT_KEYS:
                recent.pop(0)
        if len(batch) == batch_size or n == count - 1:
            yield batch
            batch = []
