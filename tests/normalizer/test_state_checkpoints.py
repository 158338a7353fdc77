"""The dedupe memory's commits leave checkpoints to its checkpointer thread (a copy in the caller's
commit stalled the normalizer's event loop), and what it remembers still reaches the database file."""

from __future__ import annotations

import time
from pathlib import Path

from aoc_common.sqlite_checkpoint import BACKSTOP_PAGES
from aoc_normalizer.state import SqliteNormalizerState


def test_sightings_are_checkpointed_by_the_thread_not_by_remember(tmp_path: Path) -> None:
    path = tmp_path / "normalizer.sqlite3"
    state = SqliteNormalizerState(path)
    try:
        assert state._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
        for batch in range(40):  # ~6 MB of sightings: past SQLite's automatic 1,000 pages
            keys = [f"directory:{batch:03d}-{n:05d}-{'x' * 40}" for n in range(1_000)]
            state.remember({0: keys}, at_ms=1_000 + batch)
        deadline = time.monotonic() + 30
        while path.stat().st_size < 4_000_000:
            assert time.monotonic() < deadline, "the sightings never reached the database file"
            time.sleep(0.05)
        assert state.seen_at(["directory:039-00999-" + "x" * 40]) == {
            "directory:039-00999-" + "x" * 40: 1_039
        }
    finally:
        state.close()
