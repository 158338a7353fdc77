"""ECS and OCSF output validated over every sample and corpus record: ECS against Elastic's field
definitions (types, allowed `event.*` values, expected event types), OCSF against the 1.7.0 models
(required attributes, types, enums, nothing undefined), and each source in its OCSF class."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from aoc_common.events import CanonicalEvent
from aoc_common.siem_formats import encode_as, to_ecs, to_ocsf
from aoc_normalizer.mappings import load_mappings
from tests.utils.corpus import load_entries, map_entry
from tests.utils.records import REPO_ROOT, fixture_events, signin_events
from tests.utils.siem_schemas import ecs_problems, ocsf_class_name, ocsf_problems


@pytest.fixture(scope="module")
def every_event(fixtures_dir: Path) -> list[CanonicalEvent]:
    """The demo samples (every source) and every corpus record the normalizer maps."""
    mappings = load_mappings(REPO_ROOT / "mappings.yml")
    corpus = [map_entry(entry, mappings, offset) for offset, entry in enumerate(load_entries())]
    mapped = [outcome.event for outcome in corpus if outcome.event is not None]
    assert len(mapped) > 100
    return [*fixture_events(fixtures_dir), *signin_events(fixtures_dir), *mapped]


def test_every_ecs_document_is_valid_ecs(every_event: list[CanonicalEvent]):
    problems = {
        event.dedupe_key: found for event in every_event if (found := ecs_problems(to_ecs(event)))
    }
    assert problems == {}


def test_every_ocsf_event_is_valid_ocsf_1_7(every_event: list[CanonicalEvent]):
    problems = {
        event.dedupe_key: found for event in every_event if (found := ocsf_problems(to_ocsf(event)))
    }
    assert problems == {}


def test_each_source_maps_to_its_ocsf_classes(every_event: list[CanonicalEvent]):
    classes: dict[str, Counter[str]] = {}
    for event in every_event:
        classes.setdefault(event.source, Counter())[ocsf_class_name(to_ocsf(event))] += 1

    assert set(classes["signins"]) == {"Authentication"}
    assert set(classes["directory"]) == {"AccountChange", "GroupManagement", "EntityManagement"}
    assert set(classes["intune"]) == {"EntityManagement"}
    assert {"ApiActivity", "FileHosting"} <= set(classes["unified"]) <= {
        "ApiActivity", "FileHosting", "EmailActivity",
    }  # fmt: skip


def test_the_original_record_travels_in_raw_data_and_event_original(
    every_event: list[CanonicalEvent],
):
    for event in every_event[:50]:
        assert to_ocsf(event)["raw_data"] == event.raw_text
        assert to_ecs(event)["event"]["original"] == event.raw_text


def test_a_failed_sign_in_reads_as_such_in_both_schemas(every_event: list[CanonicalEvent]):
    failed = next(e for e in every_event if e.source == "signins" and e.result == "failure")
    ecs, ocsf = to_ecs(failed), to_ocsf(failed)

    assert ecs["event"]["category"] == ["authentication"] and ecs["event"]["outcome"] == "failure"
    assert ecs["source"]["ip"] == failed.actor.ip_address
    assert ecs["user"]["name"] == failed.actor.user_principal_name
    assert (ocsf["class_uid"], ocsf["activity_name"], ocsf["status"]) == (3002, "Logon", "Failure")
    assert ocsf["user"]["name"] == failed.actor.user_principal_name
    assert ocsf["status_detail"] == failed.result_detail


def test_aoc_schema_is_the_event_exactly_as_published(every_event: list[CanonicalEvent]):
    event = every_event[0]
    original = event.model_dump_json().encode()
    assert encode_as("aoc", event, original) is original
    assert (
        orjson.loads(encode_as("ocsf", event, original))["class_uid"] == to_ocsf(event)["class_uid"]
    )
