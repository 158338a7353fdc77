"""The embedded log's writer lock file: writers in every process queue for the write lock in the kernel.

SQLite's own busy handler retries a locked database after sleeps that grow to 100 ms, and a newcomer
can take the lock while a waiter sleeps; `flock` on a file beside the log instead hands the lock to a
waiter the moment it is released. A blocking `flock` has no timeout, though, and a holder that hangs
(stopped, deadlocked, stuck on a full disk; a dead one releases it) must not make every other writer
wait for ever. So a writer that finds the file locked waits for it on a helper thread, with its own
open of the file, for at most `timeout_s`; then it goes on without the file, to `BEGIN IMMEDIATE` and
SQLite's own busy timeout, which turns a stuck log into an error the consumer retries. The lock file
only orders writers: SQLite's locking is what keeps offsets correct, with or without it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from aoc_common.logging import get_logger

try:
    import fcntl
except ImportError:  # not on POSIX: writers wait in SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]

log = get_logger(__name__)

SUFFIX = "-writer.lock"
TIMEOUT_S = 5.0


class WriterLockFile:
    """`with lock.held():` around a write transaction; a no-op where the file cannot be used."""

    def __init__(self, log_path: Path, *, timeout_s: float = TIMEOUT_S) -> None:
        self.path = log_path.with_name(log_path.name + SUFFIX)
        self.timeout_s = timeout_s
        self._fd: int | None = None

    def open(self) -> None:
        if fcntl is None or self._fd is not None:
            return
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            log.warning(
                "no writer lock file: writers wait in SQLite's busy handler", error=str(error)
            )

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        fd = self._fd
        if fd is None:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waited = _wait_for(self.path, self.timeout_s)
            if waited is None:
                log.warning(
                    "the log's writer lock file stayed locked; writing without it",
                    lock_file=str(self.path),
                    waited_s=self.timeout_s,
                )
                yield  # SQLite's busy timeout bounds the rest
                return
            fd = waited
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            if fd != self._fd:
                os.close(fd)


def _wait_for(path: Path, timeout_s: float) -> int | None:
    """An open of `path` that holds its lock, or None after `timeout_s` (then nothing is held).

    The blocking `flock` runs on a helper thread with its own open of the file, so that giving up
    leaves nothing behind: if the helper gets the lock after all, it lets it go at once.
    """
    fd = os.open(path, os.O_RDWR)
    outcome = {"held": False, "abandoned": False}
    guard = threading.Lock()
    done = threading.Event()

    def wait() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            outcome["abandoned"] = True
        with guard:
            if outcome["abandoned"]:
                os.close(fd)  # closing the last open of it releases the lock
            else:
                outcome["held"] = True
        done.set()

    threading.Thread(target=wait, name="aoc-message-log-writer-lock", daemon=True).start()
    done.wait(timeout_s)
    with guard:
        if outcome["held"]:
            return fd
        outcome["abandoned"] = True
        return None
