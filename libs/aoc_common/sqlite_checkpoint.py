"""Checkpoint an SQLite write-ahead log on a thread of its own, off the writers' path.

SQLite's default is that the connection whose commit pushes the WAL past 1,000 pages copies it into
the database file (and syncs both) before its commit returns. In the embedded pipeline that
connection is the collector's or the normalizer's publish, or the normalizer's dedupe memory on the
normalizer's event loop: every few megabytes one of them stalled for the copy (tens of milliseconds on
a quiet disk, over a hundred on a busy one) while records waited behind it, and the dedupe memory,
whose writes land on random pages of a growing table, paid it more and more often as it grew. Here
the file's owner runs a checkpointer thread on its own connection, once its commits have written
`min_bytes` since the last checkpoint (and at most every `every_s`), in SQLite's PASSIVE mode, which
never blocks readers or writers; a process that only writes a little (a consumer committing its
offsets) then leaves the copying to the ones that write a lot. The working
connection checkpoints by itself only as a backstop (`BACKSTOP_PAGES`), if the WAL ever grows far
past what this thread keeps it at.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from aoc_common.logging import get_logger

log = get_logger(__name__)

# Pages the working connection lets the WAL reach before it checkpoints by itself (64 MB at 4 KiB).
BACKSTOP_PAGES = 16_000
# At most this often; a checkpoint syncs the WAL and the database, so not after every commit.
EVERY_S = 0.2
# What SQLite's own default waits for (1,000 pages of 4 KiB), now written by this process.
MIN_BYTES = 4_000_000


class Checkpointer:
    """Runs `PRAGMA wal_checkpoint(PASSIVE)` on its own connection soon after commits."""

    def __init__(self, path: Path, *, every_s: float = EVERY_S, min_bytes: int = MIN_BYTES) -> None:
        self.path = path
        self.every_s = every_s
        self.min_bytes = min_bytes
        self._written = 0  # since the last checkpoint; a rough count, races only delay one
        self._committed = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, name="aoc-message-log-checkpoint", daemon=True
        )
        self._thread.start()

    def committed(self, written_bytes: int = 0) -> None:
        """A transaction that wrote about `written_bytes` committed: copy once enough has."""
        self._written += written_bytes
        if self._written >= self.min_bytes:
            self._committed.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        self._committed.set()
        thread.join(timeout_s)

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            log.warning("no checkpointer: the backstop checkpoints", error=str(error))
            return
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            while not self._stopping.is_set():
                self._committed.wait()
                self._committed.clear()
                if self._stopping.is_set():
                    break
                self._written = 0
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as error:
                    log.warning(
                        "checkpoint failed; retried after the next commit", error=str(error)
                    )
                self._stopping.wait(self.every_s)
        finally:
            db.close()
