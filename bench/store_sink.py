"""Throughput of the store sink, beside its floors measured in the same run.

    python bench/store_sink.py                          # 1,000,000 events, embedded SQLite store
    python bench/store_sink.py --events 200000 --before # also the sink of bc1d0d6 (see below)
    python bench/store_sink.py --mongo 20000            # also the Mongo store (AOC_BENCH_MONGO_URI,
                                                        # else SecantusDB in-process: a smoke run)

What is timed is the sink as `aoc run store` runs it: `StoreSink.run`, its consumer loop (fetch up
to `--batch` records, decode, upsert, commit), from the first fetch to the last commit. The records
are built beforehand and handed over by an in-memory log (`ReplayedLog`), as a broker with a backlog
would, so the log's own cost is not in the figure. `--before [REVISION]` adds the sink of another
git revision (default bc1d0d6, main at the start of session 5), run by this file in a child process
with that revision's packages (`git archive` of this checkout): the two processes take turns per
segment, never working at once, over the same records (checked by a digest). Beside them, on the
same machine, the same records in batches of `--batch` and in turns of `--segment` events (so that a
busy neighbour slows every contender alike), the floors:
- `same schema`: bare `executemany` of rows built beforehand into the store's own tables and
  indexes (the database's cost for this layout, no Python work);
- `PK only`: bare `executemany` of the JSON into a table with only an integer primary key.
Each writes its own file under .aoc-data/bench-sink/ (deleted first), in WAL mode with
synchronous=FULL and one transaction per batch, like the store.

Events arrive in time order with a minute or two of jitter and 2 % re-deliveries (updates), as a
collector or a replay sends them (`bench/corpus.py`). Printed per segment: events/s of each; at
the end: overall events/s, disk per event (database + WAL after a checkpoint) and bytes written per
event (the process's write_bytes), then a check that search finds what was stored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aoc_common import topics  # noqa: E402
from aoc_common.codec import encode  # noqa: E402
from aoc_common.event_store.encoded import EncodedEvent  # noqa: E402
from aoc_common.event_store.mongo import MongoEventStore, document_for, event_indexes  # noqa: E402
from aoc_common.event_store.sqlite import (  # noqa: E402
    CACHE_KIB,
    MMAP_BYTES,
    PAGE_SIZE,
    SqliteEventStore,
)
from aoc_common.event_store.sqlite_schema import (  # noqa: E402
    EVENT_COLUMNS,
    event_row,
    prepare,
    search_text_of,
)
from aoc_common.message_log.base import Message, MessageLog, Record, Subscription  # noqa: E402
from aoc_common.message_log.embedded import EmbeddedMessageLog  # noqa: E402
from aoc_common.query import EventFilters  # noqa: E402
from aoc_store.runtime import BATCH_SIZE, StoreSink  # noqa: E402
from bench.corpus import RARE_WORDS, synthetic_events  # noqa: E402

DUPLICATES = 0.02


def write_bytes() -> int:
    """Bytes this process has caused to be written to storage (Linux /proc/self/io)."""
    with open("/proc/self/io") as io:
        for line in io:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


@dataclass
class Contender:
    """One way of writing the batches, timed batch by batch."""

    name: str
    path: Path | None
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    written: int = 0
    events: int = 0
    segment_seconds: float = 0.0
    segment_events: int = 0
    rates: list[float] = field(default_factory=list)

    @contextlib.contextmanager
    def timing(self, count: int) -> Iterator[None]:
        """Time (wall and process CPU) and count the bytes written of writing `count` events."""
        written, started, cpu = write_bytes(), time.perf_counter(), time.process_time()
        yield
        self.add(
            count, time.perf_counter() - started, time.process_time() - cpu, write_bytes() - written
        )

    def add(self, count: int, seconds: float, cpu_seconds: float, written: int) -> None:
        self.seconds += seconds
        self.cpu_seconds += cpu_seconds
        self.segment_seconds += seconds
        self.events += count
        self.segment_events += count
        self.written += written

    def close_segment(self) -> float:
        rate = self.segment_events / self.segment_seconds if self.segment_seconds else 0.0
        self.rates.append(rate)
        self.segment_seconds = 0.0
        self.segment_events = 0
        return rate

    def disk_bytes(self) -> int:
        if self.path is None:
            return 0
        return sum(
            Path(f"{self.path}{suffix}").stat().st_size
            for suffix in ("", "-wal")
            if Path(f"{self.path}{suffix}").exists()
        )


def records_of(batch: list[Any], first_offset: int) -> list[Record]:
    """The batch as the broker hands it to the sink."""
    return [
        Record(topics.EVENTS, 0, first_offset + n, event.dedupe_key.encode(), encode(event), 0)
        for n, event in enumerate(batch)
    ]


class ReplayedLog(MessageLog):
    """Records built beforehand, handed over as a broker with a backlog hands them: every fetch
    returns at once up to `max_records` of those not yet fetched. One partition, one group. `load`
    gives it the next records and the event it sets when the last of them is committed."""

    engine = "bench"

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.fetched = 0
        self.committed_offset = 0
        self.caught_up = asyncio.Event()
        self.dead_letters: list[Message] = []

    def load(self, records: list[Record], caught_up: asyncio.Event) -> None:
        self.records, self.fetched, self.caught_up = records, 0, caught_up

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def ping(self) -> None:
        pass

    async def ensure_topics(self, topics: Sequence[str], partitions: int | None = None) -> None:
        pass

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        self.dead_letters += messages

    def subscribe(self, topics: Sequence[str], group: str) -> Subscription:
        return ReplayedSubscription(self)

    async def committed(self, group: str, topic: str) -> dict[int, int | None]:
        return {0: self.committed_offset}

    async def end_offsets(self, topic: str) -> dict[int, int]:
        return {0: self.records[-1].offset + 1 if self.records else self.committed_offset}

    async def reset_group(self, group: str, topic: str, **target: Any) -> dict[int, int]:
        raise NotImplementedError("a bench log is never replayed")


class ReplayedSubscription(Subscription):
    def __init__(self, log: ReplayedLog) -> None:
        self.log = log

    async def fetch(self, max_records: int = 500, timeout_s: float = 1.0) -> list[Record]:
        log = self.log
        records = log.records[log.fetched : log.fetched + max_records]
        log.fetched += len(records)
        if not records:  # all handed over: wait for the consumer to finish, as a broker would
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(log.caught_up.wait(), timeout_s)
        return records

    async def commit(self, records: Sequence[Record]) -> None:
        self.log.committed_offset = records[-1].offset + 1
        if records[-1].offset == self.log.records[-1].offset:
            self.log.caught_up.set()

    async def close(self) -> None:
        pass


def raw_connection(path: Path) -> sqlite3.Connection:
    """A connection configured like the store's."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    connection.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    connection.execute("PRAGMA secure_delete = FAST")
    return connection


class PkOnly:
    """Floor: the JSON into a table with only an integer primary key."""

    def __init__(self, path: Path) -> None:
        self.connection = raw_connection(path)
        self.connection.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, doc TEXT NOT NULL)")
        self.seq = 0

    def prepare(self, records: list[Record]) -> list[tuple[int, str]]:
        rows = [(self.seq + n + 1, record.value.decode()) for n, record in enumerate(records)]
        self.seq += len(rows)
        return rows

    def write(self, rows: list[tuple[int, str]]) -> None:
        self.connection.execute("BEGIN IMMEDIATE")
        self.connection.executemany("INSERT INTO events (seq, doc) VALUES (?, ?)", rows)
        self.connection.execute("COMMIT")


class SameSchema:
    """Floor: rows built beforehand, bare `executemany` into the store's own tables and indexes
    (re-deliveries written as new rows: the floor does no lookups)."""

    def __init__(self, path: Path) -> None:
        self.connection = raw_connection(path)
        prepare(self.connection)
        self.seq = 0

    def prepare(self, records: list[Record]) -> tuple[list[Any], list[Any], list[Any]]:
        events = [EncodedEvent.from_json(record.value) for record in records]
        seqs = range(self.seq + 1, self.seq + 1 + len(events))
        self.seq += len(events)
        return (
            [event_row(seq, e.fields.id, e.fields) for seq, e in zip(seqs, events, strict=True)],
            [(seq, e.json.decode()) for seq, e in zip(seqs, events, strict=True)],
            [
                (seq, search_text_of(e.fields, e.fields.id))
                for seq, e in zip(seqs, events, strict=True)
            ],
        )

    def write(self, rows: tuple[list[Any], list[Any], list[Any]]) -> None:
        event_rows, docs, words = rows
        marks = ", ".join("?" * len(EVENT_COLUMNS))
        self.connection.execute("BEGIN IMMEDIATE")
        self.connection.executemany(
            f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({marks})", event_rows
        )
        self.connection.executemany("INSERT INTO event_docs (seq, doc) VALUES (?, ?)", docs)
        self.connection.executemany("INSERT INTO event_search (rowid, terms) VALUES (?, ?)", words)
        self.connection.execute("COMMIT")


def segments(
    args: argparse.Namespace, rare: dict[str, set[str]] | None = None
) -> Iterator[list[list[Record]]]:
    """The run's batches of records, grouped by segment; `rare` collects, per rare word, the
    dedupe keys of the events whose summary carries it (what search must find afterwards)."""
    offset = 0
    segment: list[list[Record]] = []
    in_segment = 0
    for batch in synthetic_events(
        args.events, batch_size=args.batch, shape="arrival", duplicates=DUPLICATES, seed=7
    ):
        if rare is not None:
            for event in batch:
                for word in RARE_WORDS:
                    if word in event.display_summary:
                        rare.setdefault(word, set()).add(event.dedupe_key)
        segment.append(records_of(batch, offset))
        offset += len(batch)
        in_segment += len(batch)
        if in_segment >= args.segment:
            yield segment
            segment, in_segment = [], 0
    if segment:
        yield segment


def chunks(records: list[Record], size: int) -> Iterator[list[Record]]:
    for start in range(0, len(records), size):
        yield records[start : start + size]


async def bench_sqlite(args: argparse.Namespace) -> None:
    data: Path = args.data
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    pk = Contender("PK only (floor)", data / "pk-only.sqlite3")
    same = Contender("same schema (floor)", data / "same-schema.sqlite3")
    sink = Contender("store sink", data / "events.sqlite3")
    before = Contender(f"sink of {args.before}", data / "before.sqlite3")
    contenders = [sink, *([before] if args.before else []), same, pk]
    pk_writer, same_writer = PkOnly(pk.path), SameSchema(same.path)  # type: ignore[arg-type]
    replayed = ReplayedLog()
    store = SqliteEventStore(sink.path, retention_days=3650)  # type: ignore[arg-type]
    await store.start()
    stored_sink = StoreSink(replayed, store, batch_size=args.batch)
    sink_before = SinkOfRevision(args.before, args) if args.before else None
    print(f"embedded SQLite store: {args.events:,} events in batches of up to {args.batch}")
    print(
        f"  {'events':>10} "
        + " ".join(f"{c.name.split(' (')[0]:>13}" for c in contenders)
        + "   (events/s)"
    )
    done = 0
    rare: dict[str, set[str]] = {}
    try:
        for turn, segment in enumerate(segments(args, rare)):
            records = [record for batch in segment for record in batch]
            # Who goes first alternates, so that none always follows another's writes.
            for contender in contenders if turn % 2 else contenders[::-1]:
                if contender is sink:
                    caught_up = asyncio.Event()
                    replayed.load(records, caught_up)
                    with sink.timing(len(records)):
                        await stored_sink.run(caught_up)
                elif contender is before:
                    assert sink_before is not None
                    sink_before.run_segment(before, digest_of(records))
                else:
                    writer = pk_writer if contender is pk else same_writer
                    for batch in chunks(records, args.batch):
                        rows = writer.prepare(batch)  # type: ignore[attr-defined]
                        with contender.timing(len(batch)):
                            writer.write(rows)  # type: ignore[attr-defined]
            done += len(records)
            rates = [contender.close_segment() for contender in contenders]
            print(f"  {done:>10,} " + " ".join(f"{rate:>13,.0f}" for rate in rates), flush=True)
        await check_search(store, {word: len(keys) for word, keys in rare.items()})
        stored = await store.count_events()
    finally:
        await store.stop()
        if sink_before is not None:
            sink_before.close()
    for writer in (pk_writer, same_writer):
        writer.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        writer.connection.close()
    for path in (sink.path, before.path):
        if path is not None and path.exists():
            checkpoint(path)
    print(f"  stored {stored:,} distinct events ({done - stored:,} re-deliveries updated)")
    report(contenders, done)


# --- the sink of another revision, in a child process, turn by turn --------------------------------

BEFORE_REVISION = "bc1d0d6"


def checkout_of(revision: str, into: Path) -> Path:
    """The packages of `revision` (git archive of this checkout), importable from the returned
    folder: `libs/<name>` as `<name>`, `services/<name>` as `aoc_<name>`, `cli` as `aoc_cli`."""
    tree = into / f"tree-{revision}"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    git = shutil.which("git")
    if git is None:
        raise SystemExit("--before needs git and this checkout's history")
    archive = subprocess.run(  # noqa: S603 - the revision the user named, never a shell
        [git, "-C", str(REPO), "archive", revision, "libs", "services", "cli"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    packages = tree / "_packages"
    packages.mkdir()
    for folder in sorted((tree / "libs").iterdir()):
        if (folder / "__init__.py").exists():
            (packages / folder.name).symlink_to(folder)
    for folder in sorted((tree / "services").iterdir()):
        if (folder / "__init__.py").exists():
            (packages / f"aoc_{folder.name}").symlink_to(folder)
    (packages / "aoc_cli").symlink_to(tree / "cli")
    return packages


class SinkOfRevision:
    """`bench/store_sink.py --serve-sink` run with another revision's packages first on the
    path: it builds the same records and, each time it is told, runs its sink over the next
    segment and says what that cost. Only one of the two processes works at a time."""

    def __init__(self, revision: str, args: argparse.Namespace) -> None:
        packages = checkout_of(revision, args.data)
        environment = {**os.environ, "PYTHONPATH": str(packages)}
        self.process = subprocess.Popen(  # noqa: S603 - this file, this interpreter
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--serve-sink",
                "--events",
                str(args.events),
                "--batch",
                str(args.batch),
                "--segment",
                str(args.segment),
                "--data",
                str(args.data),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment,
            text=True,
        )

    def run_segment(self, contender: Contender, digest: str) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline()
        if not reply:
            raise SystemExit(f"the sink of {contender.name} stopped (see its error above)")
        cost = json.loads(reply)
        if cost["digest"] != digest:
            raise SystemExit(f"{contender.name} was given other records than this process")
        contender.add(cost["events"], cost["seconds"], cost["cpu_seconds"], cost["written"])

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=600)


async def serve_sink(args: argparse.Namespace) -> None:
    """The child side of `SinkOfRevision`: this process's packages are the other revision's."""
    path = args.data / "before.sqlite3"
    remove_database(path)
    store = SqliteEventStore(path, retention_days=3650)
    await store.start()
    replayed = ReplayedLog()
    sink = StoreSink(replayed, store, batch_size=args.batch)
    try:
        for segment in segments(args):
            if not sys.stdin.readline():
                break
            records = [record for batch in segment for record in batch]
            caught_up = asyncio.Event()
            replayed.load(records, caught_up)
            written, started, cpu = write_bytes(), time.perf_counter(), time.process_time()
            await sink.run(caught_up)
            cost = {
                "events": len(records),
                "seconds": time.perf_counter() - started,
                "cpu_seconds": time.process_time() - cpu,
                "written": write_bytes() - written,
                "digest": digest_of(records),
            }
            print(json.dumps(cost), flush=True)
    finally:
        await store.stop()


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def digest_of(records: list[Record]) -> str:
    """What tells two processes' records apart (their bytes, in order)."""
    digest = hashlib.blake2b(digest_size=16)
    for record in records:
        digest.update(record.value)
    return digest.hexdigest()


def checkpoint(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def report(contenders: list[Contender], done: int) -> None:
    print(
        f"  {'':<26} {'events/s':>10} {'slowest seg.':>12} {'CPU µs/event':>13} "
        f"{'disk B/event':>13} {'written B/event':>16}"
    )
    for contender in contenders:
        print(
            f"  {contender.name:<26} {contender.events / contender.seconds:>10,.0f} "
            f"{min(contender.rates):>12,.0f} {contender.cpu_seconds / contender.events * 1e6:>13,.1f} "
            f"{contender.disk_bytes() / done:>13,.0f} {contender.written / done:>16,.0f}"
        )
    sink, *others = contenders
    for other in others:
        ratios = [a / b for a, b in zip(sink.rates, other.rates, strict=True) if b]
        if ratios:
            print(
                f"  {sink.name} / {other.name}: {statistics.median(ratios):.2f} "
                "(median of the per-segment ratios)"
            )


async def check_search(store: Any, expected: dict[str, int]) -> None:
    """Search intact: each rare word finds exactly the events generated with it."""
    found = {}
    for word in RARE_WORDS:
        found[word] = (await store.count_matching(EventFilters(search=word), limit=100_000)).value
    wanted = {word: expected.get(word, 0) for word in RARE_WORDS}
    if found != wanted:
        raise SystemExit(f"search does not find what was stored: {found}, expected {wanted}")
    print(f"  search intact: {found} events found by each rare word, as stored")


async def bench_mongo(args: argparse.Namespace) -> None:
    """The Mongo sink beside its floors: `insert_many` into the same indexes, and into `_id` only."""
    uri = os.environ.get("AOC_BENCH_MONGO_URI")
    server = None
    if not uri:
        from secantus import SecantusDBServer

        server = SecantusDBServer(storage_path=":memory:", host="127.0.0.1", port=0)
        server.start()
        uri = f"mongodb://127.0.0.1:{server.port}"
    label = "SecantusDB (test engine: figures say nothing of MongoDB)" if server else "MongoDB"
    db_name = f"aoc_bench_sink_{uuid.uuid4().hex[:8]}"
    store = MongoEventStore(uri, db_name, retention_days=3650)
    message_log = EmbeddedMessageLog(args.data / "mongo-log.sqlite3")
    await message_log.start()
    await store.start()
    client = store._started()  # the bench's own look at the same server
    database = client[db_name]
    await database["same_schema"].create_indexes(event_indexes())
    contenders = {
        "store sink": Contender("store sink", None),
        "same indexes": Contender("same indexes (floor)", None),
        "_id only": Contender("_id only (floor)", None),
    }
    sink = StoreSink(message_log, store)
    print(f"\nMongo store on {label}: {args.mongo:,} events in batches of {args.batch}")
    mongo_args = argparse.Namespace(**{**vars(args), "events": args.mongo})
    done = 0
    try:
        for segment in segments(mongo_args):
            for records in segment:
                documents = [document_for(EncodedEvent.from_json(r.value)) for r in records]
                for name, collection in (("same indexes", "same_schema"), ("_id only", "pk_only")):
                    # Fresh keys: the floor inserts, it never meets a re-delivery.
                    fresh = [
                        {**d, "_id": uuid.uuid4().hex, "dedupe_key": uuid.uuid4().hex}
                        for d in documents
                    ]
                    with contenders[name].timing(len(records)):
                        await database[collection].insert_many(fresh, ordered=False)
                with contenders["store sink"].timing(len(records)):
                    await sink.handle(records)
            done += sum(len(records) for records in segment)
            rates = [c.close_segment() for c in contenders.values()]
            print(f"  {done:>10,} " + " ".join(f"{rate:>12,.0f}" for rate in rates), flush=True)
        for contender in contenders.values():
            print(f"  {contender.name:<22} {contender.events / contender.seconds:>10,.0f} events/s")
    finally:
        await client.drop_database(db_name)
        await store.stop()
        await message_log.stop()
        if server is not None:
            server.stop()


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=positive, default=1_000_000, help="events for SQLite")
    parser.add_argument(
        "--batch", type=positive, default=BATCH_SIZE, help="records per batch at most (the sink's)"
    )
    parser.add_argument(
        "--before",
        nargs="?",
        const=BEFORE_REVISION,
        default=None,
        metavar="REVISION",
        help=f"also the sink of a git revision (default {BEFORE_REVISION}), in a child process",
    )
    parser.add_argument("--serve-sink", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--segment", type=positive, default=100_000, help="events per turn")
    parser.add_argument("--mongo", type=int, default=0, help="also the Mongo store, N events")
    parser.add_argument("--data", type=Path, default=REPO / ".aoc-data" / "bench-sink")
    args = parser.parse_args(argv)
    if args.serve_sink:
        await serve_sink(args)
        return
    run: Callable[[argparse.Namespace], Any]
    for run in (bench_sqlite,) + ((bench_mongo,) if args.mongo else ()):
        await run(args)


if __name__ == "__main__":
    asyncio.run(main())
