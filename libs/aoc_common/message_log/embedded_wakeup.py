"""Wake readers in other processes the moment a publish commits to the embedded log.

SQLite has no cross-process notification, so a reader in another process could only poll the file
(`PRAGMA data_version`) every few tens of milliseconds: each hop of the pipeline (collector →
normalizer → store) then waited half a poll interval on average before it even looked. Instead, every
process that reads the log binds a Unix datagram socket in a folder beside the log (its *doorbell*);
a publisher, once its transaction has committed, sends the topic's name to every doorbell there. A
reader woken for a topic it reads fetches at once; the poll stays, slower, as the safety net for a
doorbell that cannot ring (a datagram dropped, a platform without Unix sockets).

Doorbells of processes that died without closing them are removed by the next publisher that finds
nobody listening (the kernel refuses the datagram).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import socket
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from aoc_common.logging import get_logger

log = get_logger(__name__)

SUFFIX = ".sock"
# sun_path holds 108 bytes on Linux (104 on macOS); keep room for the terminating NUL.
MAX_SOCKET_PATH = 100
# A doorbell name (pid + random part + suffix) is at most this long.
NAME_ROOM = 40
RECEIVE_BYTES = 4096


def doorbell_folder(log_path: Path) -> Path:
    """Where the doorbells of the log at `log_path` live: beside it, or (when that path is too long
    for a socket address) a folder under the temporary directory named after the log's full path,
    which every process on this machine derives alike."""
    resolved = log_path.resolve()
    beside = resolved.parent / f"{resolved.name}-doorbells"
    if len(os.fsencode(beside)) + NAME_ROOM <= MAX_SOCKET_PATH:
        return beside
    digest = hashlib.sha256(os.fsencode(resolved)).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / f"aoc-log-{digest}"


def supported() -> bool:
    return hasattr(socket, "AF_UNIX")


class Doorbell:
    """This process's doorbell: calls `on_ring(topics)` on the event loop when another process
    publishes to the log."""

    def __init__(self, folder: Path, on_ring: Callable[[set[str]], None]) -> None:
        self.folder = folder
        self.path = folder / f"{os.getpid()}-{uuid.uuid4().hex[:12]}{SUFFIX}"
        self._on_ring = on_ring
        self._socket: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        listening = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            listening.setblocking(False)
            listening.bind(os.fspath(self.path))
            loop.add_reader(listening.fileno(), self._drain)
        except BaseException:
            listening.close()
            raise
        self._socket, self._loop = listening, loop

    def close(self) -> None:
        listening, self._socket = self._socket, None
        if listening is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(listening.fileno())
        listening.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _drain(self) -> None:
        topics: set[str] = set()
        while self._socket is not None:
            try:
                topics.add(self._socket.recv(RECEIVE_BYTES).decode("utf-8", "replace"))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
        if topics:
            self._on_ring(topics)


class Ringer:
    """Rings every doorbell but this process's own (its readers are woken in process)."""

    def __init__(self, folder: Path, own: Callable[[], Path | None]) -> None:
        self.folder = folder
        self._own = own
        self._socket: socket.socket | None = None

    def ring(self, topic: str) -> None:
        """After a commit: tell the other readers `topic` has news. Never raises: a reader that is
        not woken still sees the news at its next poll."""
        try:
            names = os.listdir(self.folder)
        except OSError:
            return  # no reader has ever listened here
        own = self._own()
        payload = topic.encode("utf-8")
        for name in names:
            if not name.endswith(SUFFIX):
                continue
            path = self.folder / name
            if path == own:
                continue
            self._send(path, payload)

    def _send(self, path: Path, payload: bytes) -> None:
        if self._socket is None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
        try:
            self._socket.sendto(payload, os.fspath(path))
        except (ConnectionRefusedError, FileNotFoundError):
            # Nobody is bound there any more: a reader that died without closing its doorbell.
            with contextlib.suppress(OSError):
                path.unlink()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS):
                log.debug("could not ring a doorbell", path=str(path), error=str(error))
            # A full queue means that reader has a ring pending already.

    def close(self) -> None:
        sending, self._socket = self._socket, None
        if sending is not None:
            sending.close()
