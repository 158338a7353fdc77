"""The embedded runtime's memory: dedupe sightings and resolved directory names in one SQLite file.

On Kafka the Faust app keeps the same two things in changelogged tables; here they live beside the
embedded log (`DATA_DIR/normalizer.sqlite3`) so that a restarted `aoc run normalizer` or `aoc demo`
neither republishes what it already published nor re-resolves every name. Calls are short (one batch of
keys per statement) and run on the caller's thread; this module never decides anything, it only stores.
Checkpoints run on a thread of their own (`aoc_common.sqlite_checkpoint`): sightings land on random
pages of a table that grows by every record, and copying them in the caller's commit stalled the
normalizer's event loop more and more as the table grew.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from aoc_common.sqlite_checkpoint import BACKSTOP_PAGES, Checkpointer
from aoc_normalizer.core import DirectoryName
from aoc_normalizer.enrichment import CachedName

SCHEMA = """
CREATE TABLE IF NOT EXISTS dedupe_seen (
    dedupe_key TEXT PRIMARY KEY,
    seen_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedupe_seen_by_time ON dedupe_seen (seen_at_ms);
CREATE TABLE IF NOT EXISTS directory_names (
    object_id TEXT PRIMARY KEY,
    found INTEGER NOT NULL,
    display_name TEXT,
    user_principal_name TEXT,
    resolved_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
"""
_CHUNK = 500  # keys per IN (...) statement, well under SQLite's bound-parameter limit
# Seconds between checkpoints: the fewer, the fewer times a page written by several batches is copied.
CHECKPOINT_EVERY_S = 1.0
CACHE_KIB = 64 * 1024  # an upper bound: pages are allocated as they are read


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class SqliteNormalizerState:
    """Dedupe sightings (`seen_at`, `remember`, `forget_before`) and a `NameCache`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        # Lookups and sightings land on random pages: SQLite's default 2 MB cache holds ~15k keys,
        # so at a few hundred thousand most of them were re-read from the OS (CPU 15 % lower here).
        self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._db.executescript(SCHEMA)
        self._checkpointer = Checkpointer(path, every_s=CHECKPOINT_EVERY_S, min_bytes=0)
        self._checkpointer.start()

    def close(self) -> None:
        self._checkpointer.stop()
        self._db.close()

    # --- dedupe ----------------------------------------------------------------------------------

    def seen_at(self, keys: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in _chunks(list(dict.fromkeys(keys))):
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT dedupe_key, seen_at_ms FROM dedupe_seen WHERE dedupe_key IN ({marks})",
                tuple(chunk),
            )
            found.update(rows.fetchall())
        return found

    def remember(self, keys_by_partition: Mapping[int, Iterable[str]], at_ms: int) -> None:
        """Sightings at `at_ms`; one table for every partition (the embedded log has one process)."""
        rows = [(key, at_ms) for keys in keys_by_partition.values() for key in keys]
        if not rows:
            return
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO dedupe_seen (dedupe_key, seen_at_ms) VALUES (?, ?) "
                "ON CONFLICT (dedupe_key) DO UPDATE SET seen_at_ms = excluded.seen_at_ms",
                rows,
            )
        self._checkpointer.committed()

    def forget_before(self, before_ms: int) -> int:
        """Drop sightings that can no longer make anything a duplicate; returns how many."""
        cursor = self._db.execute("DELETE FROM dedupe_seen WHERE seen_at_ms < ?", (before_ms,))
        self._checkpointer.committed()
        return cursor.rowcount

    # --- NameCache ---------------------------------------------------------------------------------

    def cached_names(self, ids: Sequence[str]) -> dict[str, CachedName]:
        found: dict[str, CachedName] = {}
        for chunk in _chunks(list(dict.fromkeys(ids))):
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT object_id, found, display_name, user_principal_name, resolved_at_ms "
                f"FROM directory_names WHERE object_id IN ({marks})",
                tuple(chunk),
            )
            for object_id, was_found, display, upn, at_ms in rows:
                found[object_id] = CachedName(DirectoryName(bool(was_found), display, upn), at_ms)
        return found

    def remember_names(self, names: Mapping[str, CachedName]) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO directory_names "
                "(object_id, found, display_name, user_principal_name, resolved_at_ms) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        i,
                        int(c.name.found),
                        c.name.display_name,
                        c.name.user_principal_name,
                        c.resolved_at_ms,
                    )
                    for i, c in names.items()
                ],
            )
        self._checkpointer.committed()
