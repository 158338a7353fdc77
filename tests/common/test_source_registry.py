"""The source registry: every place that lists sources reads it, and every spec is complete."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from aoc_api.routes.sources import source_of_resource
from aoc_collector.replay import bundled_sample_dir
from aoc_common import topics
from aoc_common.events import RawEnvelope
from aoc_common.schema import canonical_event_schema
from aoc_common.source_health import SourceHealth
from aoc_common.sources import SOURCES, all_sources, source_record_id, source_spec
from aoc_common.sources.samples import sample_files, sample_records
from aoc_normalizer.mappings import load_mappings

REPO = Path(__file__).resolve().parents[2]


def test_every_source_has_a_raw_topic_and_is_in_the_published_schema() -> None:
    assert [spec.id for spec in all_sources()] == list(SOURCES)
    assert tuple(f"aoc.raw.{source}" for source in SOURCES) == topics.RAW_TOPICS
    assert all(topics.source_of_raw_topic(f"aoc.raw.{source}") == source for source in SOURCES)
    assert topics.source_of_raw_topic("aoc.raw.nothing") is None
    schema = canonical_event_schema()
    assert schema["properties"]["source"]["enum"] == list(SOURCES)


def test_a_source_id_outside_the_registry_is_refused_where_a_source_is_read() -> None:
    with pytest.raises(ValidationError, match="unknown source 'exchange'"):
        RawEnvelope.model_validate(
            {"source": "exchange", "fetched_at": "2026-11-20T00:00:00Z", "payload": {}}
        )
    with pytest.raises(ValidationError):
        SourceHealth.model_validate({"source": "exchange"})
    with pytest.raises(KeyError, match="known: "):
        source_spec("exchange")


@pytest.mark.parametrize("source", SOURCES)
def test_each_source_has_a_mapping_section_and_readable_samples(source: str) -> None:
    spec = source_spec(source)
    mappings = load_mappings(REPO / "mappings.yml")
    assert source in mappings.sources
    assert sample_files(spec, bundled_sample_dir()), f"no sample file for {source}"
    records = sample_records(spec, bundled_sample_dir())
    assert records
    assert all(source_record_id(source, record) for record in records)
    assert all(spec.record_time_field in record for record in records)
    assert spec.labels.display_name and spec.labels.description and spec.labels.retention


def test_graph_notifications_name_the_source_whose_resources_they_are_about() -> None:
    assert source_of_resource("/deviceManagement/managedDevices/abc") == "intune"
    assert source_of_resource("users/7f3a") == "directory"
    assert source_of_resource("groups") == "directory"
