"""The consumer runtime's memory (`partition_state.py`) and the changelog format it shares with the
Faust tables (`changelog.py`): pure, no broker."""

from __future__ import annotations

from faust.serializers import codecs

from aoc_normalizer.changelog import DEDUPE_TABLE, changelog_topic, decoded, names_from
from aoc_normalizer.core import DirectoryName
from aoc_normalizer.enrichment import CachedName
from aoc_normalizer.partition_state import ChangelogNameCache, PartitionSightings


def test_sightings_are_kept_per_raw_partition_and_a_lost_partition_takes_its_own_along() -> None:
    sightings = PartitionSightings()
    sightings.remember({0: ["directory:a"], 1: ["directory:b"]}, at_ms=1000)
    sightings.remember({1: ["directory:b"]}, at_ms=2000)

    assert sightings.seen_at(["directory:a", "directory:b", "directory:c"]) == {
        "directory:a": 1000,
        "directory:b": 2000,
    }
    sightings.drop([1])
    assert sightings.partitions == {0}
    assert sightings.seen_at(["directory:b"]) == {}


def test_a_batchs_changelog_records_read_back_as_faust_reads_its_table_and_restore_replaces() -> (
    None
):
    written = PartitionSightings.changelog_messages({2: ["unified:x", "unified:y"], 0: []}, 5000)

    assert list(written) == [2]  # one record per raw partition that published something
    value = codecs.loads("json", written[2].value)  # how the Faust table decodes its changelog
    assert value == {"at_ms": 5000, "keys": ["unified:x", "unified:y"]}
    assert codecs.loads("json", written[2].key).startswith("2:")

    sightings = PartitionSightings()
    sightings.remember({2: ["stale"]}, at_ms=1)
    older = {"at_ms": 4000, "keys": ["unified:x"]}
    sightings.restore(2, [older, decoded(written[2].value), None, {"unknown": True}])
    assert sightings.seen_at(["unified:x", "unified:y", "stale"]) == {
        "unified:x": 5000,
        "unified:y": 5000,
    }


def test_expired_sightings_are_forgotten() -> None:
    sightings = PartitionSightings()
    sightings.remember({0: ["old"], 1: ["older"]}, at_ms=10)
    sightings.remember({1: ["new"]}, at_ms=99)

    assert sightings.forget_before(50) == 2
    assert sightings.seen_at(["old", "older", "new"]) == {"new": 99}


def test_names_go_to_their_changelog_partition_and_come_back_latest_first() -> None:
    cache = ChangelogNameCache(partitions=3)
    alice = CachedName(DirectoryName(True, "Alice", "alice@contoso.com"), 7)
    cache.remember_names({"id-1": alice})

    [(partition, message)] = cache.take_unsent()
    assert 0 <= partition < 3 and cache.take_unsent() == []
    assert codecs.loads("json", message.value) == [True, "Alice", "alice@contoso.com", 7]

    gone = (message.key, None)  # a tombstone after the answer: the entry is gone
    assert names_from([(message.key, message.value)]) == {"id-1": alice}
    assert names_from([(message.key, message.value), gone]) == {}


def test_the_changelog_topics_are_the_faust_tables_own() -> None:
    assert changelog_topic(DEDUPE_TABLE) == "aoc-normalizer-dedupe-seen-changelog"
