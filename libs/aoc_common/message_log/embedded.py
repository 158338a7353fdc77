"""The embedded message log: Kafka's semantics in one SQLite file, for a single machine without servers.

This is the engine `aoc demo` and a single-machine `aoc run` use, not a test double: messages and committed
offsets survive a restart. Topics have partitions, keys pick the partition, consumer groups keep their own
offsets and split partitions between their members, and operators can replay by offset or timestamp.

It must never block the event loop (an API may be served from the same process): every SQLite call runs on
one dedicated worker thread, which also owns the connection. Several processes may share the file (`aoc
run` starts each service in its own, and so does `aoc demo`): each publish is one `BEGIN IMMEDIATE`
transaction so offsets stay dense and unique per partition. Writers queue for that lock on a lock file
beside the log (`embedded_lock`: `flock`, bounded), so the kernel hands it over the moment it is
released; SQLite's own busy handler, which retries after sleeps growing to 100 ms and lets newcomers
overtake a sleeper, stays the fallback and its timeout the bound. A fetch waiting
for news is woken at once by a publish in this process, and by a publish in another process through
this process's doorbell (`embedded_wakeup`: a Unix datagram socket beside the log, rung after each
commit); polling SQLite's `data_version`, which costs no table read, remains the safety net.
Checkpoints run on a thread of their own (`aoc_common.sqlite_checkpoint`), not in a publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from aoc_common.logging import get_logger
from aoc_common.message_log import embedded_lock, embedded_wakeup
from aoc_common.message_log.base import (
    Message,
    MessageLog,
    MessageLogError,
    Record,
    Subscription,
    timestamp_ms,
    validate_reset_target,
)
from aoc_common.sqlite_checkpoint import BACKSTOP_PAGES, Checkpointer

T = TypeVar("T")
TopicPartition = tuple[str, int]

log = get_logger(__name__)

# `offset` is an SQL keyword, hence the quotes. Messages keep a rowid: WITHOUT ROWID suits small rows
# only, and a value may be a megabyte.
SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL CHECK (partitions > 0)
);
CREATE TABLE IF NOT EXISTS messages (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (topic, partition, timestamp_ms);
CREATE TABLE IF NOT EXISTS group_offsets (
    consumer_group TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition)
) WITHOUT ROWID;
"""


BUSY_TIMEOUT_S = 30.0


def partition_for_key(key: bytes, partitions: int) -> int:
    """Stable across processes and restarts (unlike `hash`), so a key always lands in one partition."""
    return zlib.crc32(key) % partitions


class EmbeddedMessageLog(MessageLog):
    """A durable append-only log on SQLite (WAL mode, `synchronous=NORMAL`).

    `synchronous=NORMAL` means a commit survives a crash of the process but the last transactions may be
    lost on power failure, the same trade Kafka makes by not fsyncing each message.
    Consumer group membership is per process: members in another process sharing the file are not seen
    (they neither split partitions with these members nor stop `reset_group`).
    """

    engine = "embedded"

    def __init__(
        self,
        path: Path,
        *,
        default_partitions: int = 1,
        poll_interval_s: float = 0.05,
        writer_lock_timeout_s: float = embedded_lock.TIMEOUT_S,
    ) -> None:
        if default_partitions < 1:
            raise ValueError("default_partitions must be >= 1")
        self.path = Path(path)
        self.default_partitions = default_partitions
        self.poll_interval_s = poll_interval_s
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._new_messages = asyncio.Event()
        # Next partition for keyless messages, per topic; touched by the worker thread only.
        self._round_robin: dict[str, int] = {}
        self._partition_counts: dict[str, int] = {}
        self._members: dict[str, list[EmbeddedSubscription]] = {}
        self._doorbell: embedded_wakeup.Doorbell | None = None
        self._doorbell_failed = False
        self._checkpointer: Checkpointer | None = None
        self._writer_lock = embedded_lock.WriterLockFile(self.path, timeout_s=writer_lock_timeout_s)
        self._ringer: embedded_wakeup.Ringer | None = None
        if embedded_wakeup.supported():
            folder = embedded_wakeup.doorbell_folder(self.path)
            self._ringer = embedded_wakeup.Ringer(folder, self._own_doorbell)

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aoc-message-log")
        try:
            await self._call(self._open)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._checkpointer = Checkpointer(self.path)
        self._checkpointer.start()

    async def stop(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        doorbell, self._doorbell = self._doorbell, None
        if doorbell is not None:
            doorbell.close()
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            await asyncio.to_thread(checkpointer.stop)
        with contextlib.suppress(sqlite3.Error):
            await asyncio.get_running_loop().run_in_executor(executor, self._close)
        executor.shutdown(wait=False)
        self._wake_fetchers()

    async def ping(self) -> None:
        await self._call(self._ping)

    # --- topics and publishing -----------------------------------------------------------------------

    async def ensure_topics(self, topics: Sequence[str], partitions: int | None = None) -> None:
        count = self.default_partitions if partitions is None else partitions
        if count < 1:
            raise ValueError("partitions must be >= 1")
        await self._call(self._create_topics, list(topics), count)

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        if not messages:
            return
        await self._call(self._append_and_ring, topic, list(messages))
        self._wake_fetchers()

    def subscribe(self, topics: Sequence[str], group: str) -> Subscription:
        if not topics:
            raise ValueError("subscribe to at least one topic")
        return EmbeddedSubscription(self, tuple(topics), group)

    # --- offsets and replay --------------------------------------------------------------------------

    async def committed(self, group: str, topic: str) -> dict[int, int | None]:
        return await self._call(self._committed, group, topic)

    async def end_offsets(self, topic: str) -> dict[int, int]:
        return await self._call(self._end_offsets, topic)

    async def reset_group(
        self,
        group: str,
        topic: str,
        *,
        to_offset: int | None = None,
        to_timestamp: datetime | None = None,
    ) -> dict[int, int]:
        """See MessageLog.reset_group; refuses while a member of `group` is active in this process."""
        validate_reset_target(to_offset, to_timestamp)
        active = len(self._members.get(group, []))
        if active:
            raise MessageLogError(
                f"consumer group {group!r} has {active} active member(s); stop them before a reset"
            )
        since_ms = None if to_timestamp is None else timestamp_ms(to_timestamp)
        return await self._call(self._reset, group, topic, to_offset, since_ms)

    # --- consumer group membership (event loop side) -------------------------------------------------

    async def _join(self, member: EmbeddedSubscription) -> None:
        await self.ensure_topics(member.topics)
        counts = await self._call(self._partitions_of, member.topics)
        self._partition_counts.update(counts)
        self._members.setdefault(member.group, []).append(member)
        self._rebalance(member.group)
        self._listen_for_other_processes()

    def _listen_for_other_processes(self) -> None:
        """Open this process's doorbell once it has a reader; without one, the poll alone remains."""
        if self._doorbell is not None or self._ringer is None or self._doorbell_failed:
            return
        doorbell = embedded_wakeup.Doorbell(self._ringer.folder, self._rung)
        try:
            doorbell.open(asyncio.get_running_loop())
        except (OSError, NotImplementedError) as error:
            log.warning(
                "no doorbell: readers notice other processes' publishes by polling",
                folder=str(self._ringer.folder),
                error=str(error),
            )
            self._doorbell_failed = True  # do not try again
            return
        self._doorbell = doorbell

    def _own_doorbell(self) -> Path | None:
        return None if self._doorbell is None else self._doorbell.path

    def _rung(self, topics: set[str]) -> None:
        """Another process published to `topics`: wake the fetches if a member here reads one."""
        for members in self._members.values():
            if any(topic in member.topics for member in members for topic in topics):
                self._wake_fetchers()
                return

    def _leave(self, member: EmbeddedSubscription) -> None:
        members = self._members.get(member.group, [])
        if member in members:
            members.remove(member)
        if not members:
            self._members.pop(member.group, None)
        self._rebalance(member.group)

    def _rebalance(self, group: str) -> None:
        """Kafka-style split: among the members reading a topic, member i of n gets partitions p % n == i."""
        members = self._members.get(group, [])
        for member in members:
            owned: list[TopicPartition] = []
            for topic in member.topics:
                readers = [m for m in members if topic in m.topics]
                index, count = readers.index(member), len(readers)
                partitions = range(self._partition_counts.get(topic, 0))
                owned.extend((topic, p) for p in partitions if p % count == index)
            member._assign(tuple(owned))
        self._wake_fetchers()

    def _wake_fetchers(self) -> None:
        """Wake every waiting fetch: a fresh Event per round, so no waiter misses a set/clear pair."""
        woken, self._new_messages = self._new_messages, asyncio.Event()
        woken.set()

    async def _call(self, work: Callable[..., T], *args: object) -> T:
        """Run `work(*args)` on the worker thread; SQLite failures become MessageLogError."""
        if self._executor is None:
            raise MessageLogError(f"embedded message log at {self.path} is not started")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(work, *args))
        except sqlite3.Error as exc:
            raise MessageLogError(f"embedded message log at {self.path}: {exc}") from exc

    # --- SQLite work (worker thread only) ------------------------------------------------------------

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MessageLogError(f"cannot create the directory for {self.path}: {exc}") from exc
        try:
            # Autocommit mode: transactions are opened explicitly, so that writers can BEGIN IMMEDIATE.
            # timeout: how long a writer waits for another process's write lock before failing.
            db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints are the checkpointer thread's (embedded_checkpoint), not a publish's.
            db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
            db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise MessageLogError(f"cannot open the message log at {self.path}: {exc}") from exc
        self._db = db
        self._writer_lock.open()

    def _close(self) -> None:
        if self._ringer is not None:
            self._ringer.close()
        self._writer_lock.close()
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def _ping(self) -> None:
        self._conn.execute("SELECT 1").fetchone()

    def _data_version(self) -> int:
        """Changes whenever another connection (another process) commits to the file."""
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise MessageLogError(f"embedded message log at {self.path} is not started")
        return self._db

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE takes the write lock up front, so two processes never both assign an offset;
        the lock file before it makes writers queue in the kernel instead of SQLite's sleeps."""
        db = self._conn
        with self._writer_lock.held():
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _create_topics(self, topics: list[str], partitions: int) -> None:
        with self._write_transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO topics (name, partitions) VALUES (?, ?)",
                [(topic, partitions) for topic in topics],
            )

    def _partitions_of(self, topics: Sequence[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for topic in topics:
            row = self._conn.execute("SELECT partitions FROM topics WHERE name = ?", (topic,))
            found = row.fetchone()
            if found is not None:
                counts[topic] = int(found[0])
        return counts

    def _append(self, topic: str, messages: list[Message]) -> None:
        with self._write_transaction() as db:
            # Publishing to a missing topic creates it, as Kafka does with auto.create.topics.enable.
            db.execute(
                "INSERT OR IGNORE INTO topics (name, partitions) VALUES (?, ?)",
                (topic, self.default_partitions),
            )
            partitions = self._partitions_of([topic])[topic]
            now_ms = time.time_ns() // 1_000_000
            next_offsets: dict[int, int] = {}
            rows = []
            for message in messages:
                partition = self._choose_partition(topic, message.key, partitions)
                if partition not in next_offsets:
                    next_offsets[partition] = self._next_offset(topic, partition)
                offset = next_offsets[partition]
                next_offsets[partition] = offset + 1
                rows.append((topic, partition, offset, now_ms, message.key, message.value))
            db.executemany(
                'INSERT INTO messages (topic, partition, "offset", timestamp_ms, key, value)'
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def _append_and_ring(self, topic: str, messages: list[Message]) -> None:
        self._append(topic, messages)
        if self._checkpointer is not None:
            self._checkpointer.committed(sum(len(m.value) + len(m.key or b"") for m in messages))
        if self._ringer is not None:
            self._ringer.ring(topic)  # committed: readers elsewhere may fetch it now

    def _choose_partition(self, topic: str, key: bytes | None, partitions: int) -> int:
        if key is not None:
            return partition_for_key(key, partitions)
        turn = self._round_robin.get(topic, 0)
        self._round_robin[topic] = turn + 1
        return turn % partitions

    def _read(
        self,
        group: str,
        assignment: tuple[TopicPartition, ...],
        positions: dict[TopicPartition, int],
        max_records: int,
    ) -> tuple[dict[TopicPartition, int], list[Record]]:
        """Records after each position; a partition without one starts at the committed offset."""
        db = self._conn
        positions = dict(positions)
        for topic, partition in assignment:
            if (topic, partition) not in positions:
                row = db.execute(
                    "SELECT next_offset FROM group_offsets"
                    " WHERE consumer_group = ? AND topic = ? AND partition = ?",
                    (group, topic, partition),
                ).fetchone()
                positions[topic, partition] = 0 if row is None else int(row[0])  # 0 = earliest
        records: list[Record] = []
        for topic, partition in assignment:
            room = max_records - len(records)
            if room <= 0:
                break
            rows = db.execute(
                'SELECT "offset", timestamp_ms, key, value FROM messages'
                ' WHERE topic = ? AND partition = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
                (topic, partition, positions[topic, partition], room),
            ).fetchall()
            for offset, ts_ms, key, value in rows:
                records.append(Record(topic, partition, offset, key, value, ts_ms))
            if rows:
                positions[topic, partition] = rows[-1][0] + 1
        return positions, records

    def _versioned_read(
        self,
        group: str,
        assignment: tuple[TopicPartition, ...],
        positions: dict[TopicPartition, int],
        max_records: int,
    ) -> tuple[int, tuple[dict[TopicPartition, int], list[Record]]]:
        """`_read`, with the file's data_version taken before it: a later change means news."""
        return self._data_version(), self._read(group, assignment, positions, max_records)

    def _commit(self, group: str, offsets: dict[TopicPartition, int]) -> None:
        with self._write_transaction():
            self._store_offsets(group, offsets)

    def _store_offsets(self, group: str, offsets: dict[TopicPartition, int]) -> None:
        self._conn.executemany(
            "INSERT INTO group_offsets (consumer_group, topic, partition, next_offset)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (consumer_group, topic, partition)"
            " DO UPDATE SET next_offset = excluded.next_offset",
            [(group, topic, partition, offset) for (topic, partition), offset in offsets.items()],
        )

    def _committed(self, group: str, topic: str) -> dict[int, int | None]:
        partitions = self._partitions_of([topic]).get(topic, 0)
        committed: dict[int, int | None] = dict.fromkeys(range(partitions))
        rows = self._conn.execute(
            "SELECT partition, next_offset FROM group_offsets WHERE consumer_group = ? AND topic = ?",
            (group, topic),
        )
        for partition, offset in rows:
            if partition in committed:
                committed[partition] = offset
        return committed

    def _end_offsets(self, topic: str) -> dict[int, int]:
        """One index seek per partition: a MAX with GROUP BY would read every offset of the topic,
        and consumers ask for their lag every few seconds while the log holds millions."""
        partitions = self._partitions_of([topic]).get(topic, 0)
        return {partition: self._next_offset(topic, partition) for partition in range(partitions)}

    def _next_offset(self, topic: str, partition: int) -> int:
        row = self._conn.execute(
            'SELECT MAX("offset") FROM messages WHERE topic = ? AND partition = ?',
            (topic, partition),
        ).fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def _reset(
        self, group: str, topic: str, to_offset: int | None, since_ms: int | None
    ) -> dict[int, int]:
        with self._write_transaction() as db:
            targets: dict[int, int] = {}
            for partition, end in self._end_offsets(topic).items():
                if to_offset is not None:
                    # Clamped to the end only: nothing expires here, so every log starts at 0.
                    targets[partition] = min(to_offset, end)
                    continue
                first = db.execute(
                    'SELECT MIN("offset") FROM messages'
                    " WHERE topic = ? AND partition = ? AND timestamp_ms >= ?",
                    (topic, partition, since_ms),
                ).fetchone()[0]
                targets[partition] = end if first is None else int(first)
            self._store_offsets(group, {(topic, p): offset for p, offset in targets.items()})
        return targets


class EmbeddedSubscription(Subscription):
    """One member of a consumer group; joins on `async with` or on the first fetch."""

    def __init__(
        self, message_log: EmbeddedMessageLog, topics: tuple[str, ...], group: str
    ) -> None:
        self.topics = topics
        self.group = group
        self._log = message_log
        self._assignment: tuple[TopicPartition, ...] = ()
        self._positions: dict[TopicPartition, int] = {}
        self._generation = 0
        self._turn = 0
        self._joined = False
        self._closed = False

    async def __aenter__(self) -> EmbeddedSubscription:
        await self._ensure_joined()
        return self

    def _assign(self, assignment: tuple[TopicPartition, ...]) -> None:
        """A partition kept across a rebalance keeps its position; a new one starts at the commit."""
        self._positions = {tp: pos for tp, pos in self._positions.items() if tp in assignment}
        self._assignment = assignment
        self._generation += 1

    async def _ensure_joined(self) -> None:
        if self._closed:
            raise MessageLogError(f"this member of {self.group!r} has left the group")
        if not self._joined:
            self._joined = True
            try:
                await self._log._join(self)
            except BaseException:
                self._joined = False
                raise

    async def fetch(self, max_records: int = 500, timeout_s: float = 1.0) -> list[Record]:
        if max_records < 1:
            raise ValueError("max_records must be >= 1")
        await self._ensure_joined()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_s, 0.0)
        while True:
            # Taken before reading, so that a publish landing during the read still wakes us.
            woken = self._log._new_messages
            generation = self._generation
            # Rotate the starting partition so one busy partition cannot starve the others.
            self._turn += 1
            start = self._turn % len(self._assignment) if self._assignment else 0
            order = self._assignment[start:] + self._assignment[:start]
            version, (positions, records) = await self._log._call(
                self._log._versioned_read, self.group, order, self._positions, max_records
            )
            if self._closed:
                return []
            if generation != self._generation:
                continue  # reassigned while reading: these records may belong to another member now
            self._positions = positions
            if records:
                return records
            if loop.time() >= deadline:
                return []
            # Nothing new: wait for a publish in this process, or for another process's commit.
            while not await self._wait_for_news(woken, version, deadline):
                if loop.time() >= deadline:
                    return []

    async def _wait_for_news(self, woken: asyncio.Event, version: int, deadline: float) -> bool:
        """True once something may have been published since `version` was read; False at a tick."""
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return True  # one last read before giving up
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woken.wait(), min(self._log.poll_interval_s, remaining))
            return True
        if self._closed:
            return True
        return await self._log._call(self._log._data_version) != version

    async def commit(self, records: Sequence[Record]) -> None:
        """Commits only partitions this member still owns: the new owner re-reads the others."""
        offsets: dict[TopicPartition, int] = {}
        skipped: set[TopicPartition] = set()
        for record in records:
            tp = (record.topic, record.partition)
            if tp not in self._assignment:
                skipped.add(tp)
                continue
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        if skipped:
            log.warning("commit_skipped_unowned_partitions", group=self.group, partitions=skipped)
        if offsets:
            await self._log._call(self._log._commit, self.group, offsets)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._joined:
            self._log._leave(self)
        self._assignment = ()
