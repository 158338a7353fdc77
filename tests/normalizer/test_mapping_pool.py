"""Mapping in worker processes (`NORMALIZER_WORKERS`): the step gives exactly what it gives in-process —
the same event bytes in the same order, the same dead letters, the same duplicates dropped."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from aoc_common.codec import decode
from aoc_common.message_log.base import Record
from aoc_common.settings import Settings
from aoc_normalizer.enrichment import MemoryNameCache
from aoc_normalizer.partition_state import PartitionSightings
from aoc_normalizer.step import NormalizerStep
from tests.utils.records import NOW, directory_records, raw_bytes_record, raw_record


async def test_a_pool_maps_a_batch_exactly_as_the_step_does_in_process(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    templates = directory_records(fixtures_dir)
    good = [
        raw_record("directory", {**templates[n % len(templates)], "id": f"Dir_{n}"}, offset=n)
        for n in range(30)
    ]
    batch: list[Record] = [*good, raw_bytes_record("directory", b"{not json", offset=30), good[3]]
    settings = Settings(data_dir=tmp_path, dedupe_window_days=7)

    def step(workers: int) -> NormalizerStep:
        return NormalizerStep.from_settings(
            settings, seen=PartitionSightings(), names=MemoryNameCache(), workers=workers
        )

    in_process, pooled = step(0), step(2)
    try:
        expected = await in_process.process(batch, now=NOW + timedelta(days=1))
        got = await pooled.process(batch, now=NOW + timedelta(days=1))
    finally:
        pooled.close()

    assert [m.value for m in got.event_messages()] == [m.value for m in expected.event_messages()]
    assert [m.key for m in got.event_messages()] == [m.key for m in expected.event_messages()]
    assert len(got.events) == 30 and got.duplicates == expected.duplicates == 1
    assert got.remember == expected.remember
    assert [decode(m.value)["reason"] for m in got.dead_letter_messages()] == [
        decode(m.value)["reason"] for m in expected.dead_letter_messages()
    ]
