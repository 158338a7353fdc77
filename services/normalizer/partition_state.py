"""The consumer runtime's memory: dedupe sightings per raw partition and the directory-name cache.

Both live in this process and are rebuilt from their changelog topics (`changelog.py`, the format the
Faust tables use): the sightings of raw partition p when p is assigned to this member, the names once at
start. What a batch adds is handed back as changelog messages for the shell to send — after the batch's
events are acknowledged, before its offsets are committed. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aoc_common.message_log.base import Message
from aoc_normalizer.changelog import (
    apply_sightings,
    encoded,
    name_partition,
    name_value,
    sightings_key,
    sightings_value,
)
from aoc_normalizer.enrichment import CachedName


class PartitionSightings:
    """`DedupeState` whose sightings are grouped by the raw partition they were read from.

    A member holds only its assigned partitions' sightings; a partition that moves to another member
    takes its sightings with it (the new owner restores them from the changelog).
    """

    def __init__(self) -> None:
        self._by_partition: dict[int, dict[str, int]] = {}

    @property
    def partitions(self) -> set[int]:
        return set(self._by_partition)

    def __len__(self) -> int:
        return sum(len(seen) for seen in self._by_partition.values())

    def seen_at(self, keys: Sequence[str]) -> dict[str, int]:
        tables = list(self._by_partition.values())
        found: dict[str, int] = {}
        for key in keys:
            for seen in tables:
                at_ms = seen.get(key)
                if at_ms is not None and at_ms > found.get(key, -1):
                    found[key] = at_ms
        return found

    def remember(self, keys_by_partition: Mapping[int, Sequence[str]], at_ms: int) -> None:
        for partition, keys in keys_by_partition.items():
            seen = self._by_partition.setdefault(partition, {})
            for key in keys:
                seen[key] = at_ms

    def restore(self, partition: int, values: Iterable[Any]) -> None:
        """Partition `partition`'s sightings, replaced by what its changelog records (decoded) say."""
        seen: dict[str, int] = {}
        apply_sightings(seen, values)
        self._by_partition[partition] = seen

    def drop(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._by_partition.pop(partition, None)

    def forget_before(self, before_ms: int) -> int:
        """Drop sightings that no longer make anything a duplicate; returns how many."""
        forgotten = 0
        for seen in self._by_partition.values():
            expired = [key for key, at_ms in seen.items() if at_ms < before_ms]
            for key in expired:
                del seen[key]
            forgotten += len(expired)
        return forgotten

    @staticmethod
    def changelog_messages(
        keys_by_partition: Mapping[int, Sequence[str]], at_ms: int
    ) -> dict[int, Message]:
        """One changelog record per raw partition of the batch, for changelog partition p."""
        return {
            partition: Message(
                encoded(sightings_key(partition)), encoded(sightings_value(keys, at_ms))
            )
            for partition, keys in keys_by_partition.items()
            if keys
        }


class ChangelogNameCache:
    """`NameCache` in memory; new answers wait in `unsent` until the shell writes them to the changelog.

    Every member reads the whole (compacted) names changelog at start and keeps what it resolves itself:
    a cache, so a member that misses an entry merely asks Graph again.
    """

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._names: dict[str, CachedName] = {}
        self.unsent: list[tuple[int, Message]] = []

    def restore(self, names: Mapping[str, CachedName]) -> None:
        self._names = dict(names)

    def cached_names(self, ids: Sequence[str]) -> dict[str, CachedName]:
        names = self._names
        return {i: names[i] for i in ids if i in names}

    def remember_names(self, names: Mapping[str, CachedName]) -> None:
        self._names.update(names)
        self.unsent += [
            (
                name_partition(object_id, self.partitions),
                Message(encoded(object_id), encoded(name_value(cached))),
            )
            for object_id, cached in names.items()
        ]

    def take_unsent(self) -> list[tuple[int, Message]]:
        unsent, self.unsent = self.unsent, []
        return unsent
