"""The production pipeline end to end: `python bench/pipeline_kafka_mongo.py [--rate 2000] [--seconds 60]`.

The same shape as bench/pipeline.py, on the production engines: raw records (bench/generate.py, every
source, 2 % duplicates) are published to the raw topics of a Kafka broker, `python -m aoc_normalizer`
and `python -m aoc_store` run in their own processes exactly as `aoc run` starts them on Kafka + Mongo,
and this process watches the events reach the broker and the database:

1. *backlog*: N records published up front, then the services started: how fast each stage drains it
   (normalizer: unique events on `aoc.events` per second, read from the topic by this process; store:
   events counted in Mongo per second), the time until all is searchable, and each service's peak memory;
2. *offered rate*: the same services then get records at a fixed rate (every 100 ms) for S seconds:
   ingest → searchable latency per publish tick, p50/p99 and the median per tenth of the run.

Floors in the same run: the raw records published to the broker alone (what a publisher can offer),
and the run's normalized events written by `insert_many` into a collection with the events collection's
indexes and into one with only `_id` (what the database takes with no sink, and what its indexes cost).

Engines: `AOC_BENCH_KAFKA=host:port` and `AOC_BENCH_MONGO_URI=mongodb://…` when set; else a private
in-memory Tansu and a SecantusDB server in its own process — the test engines, so that the bench runs
anywhere (CI runs it as a smoke test), but SecantusDB writes a few hundred documents a second: its
figures measure SecantusDB, not AOC. On a shared broker the record ids are new each run (a random
seed unless `--seed` is given): the normalizer's dedupe window would otherwise drop a second run's
records as repeats. Each run writes to a fresh Mongo database, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from engines import kafka_broker, machine, peak_rss_mb, stop
from generate import Generated, generate, iter_batches

from aoc_common import topics
from aoc_common.event_store.encoded import EncodedEvent
from aoc_common.event_store.mongo import MongoEventStore, document_for, event_indexes
from aoc_common.message_log.base import Message
from aoc_common.message_log.kafka import KafkaMessageLog

TICK_S = 0.1
POLL_S = 0.1
RUNTIMES = ("consumer", "faust")
TANSU_OPTIONS = {  # what INFRA.md says Tansu needs: no idempotent producer, short group timings
    "enable_idempotence": False,
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
    "rebalance_timeout_ms": 5000,
}


@dataclass
class Stage:
    """When a stage first showed output and when it had all of it."""

    first: float | None = None
    done: float | None = None

    def saw(self, count: int, expected: int, now: float) -> None:
        if count and self.first is None:
            self.first = now
        if count >= expected and self.done is None:
            self.done = now

    def rate(self, count: int) -> str:
        """Events per second from first to last output; a backlog drained within one poll has none."""
        if self.first is None or self.done is None or self.done - self.first < 1.0:
            return "n/a (under 1 s)"
        return f"{count / (self.done - self.first):,.0f}"


@dataclass
class Offered:
    rate: int
    seconds: float
    latencies_s: list[float] = field(default_factory=list)
    unfinished: int = 0

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies_s)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def per_tenth_ms(self) -> str:
        tenth = max(1, len(self.latencies_s) // 10)
        medians = [
            statistics.median(self.latencies_s[i : i + tenth])
            for i in range(0, len(self.latencies_s), tenth)
        ][:10]
        return " ".join(f"{m * 1000:.0f}" for m in medians)


# --- engines -----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def mongo_server(workdir: Path) -> Iterator[tuple[str, str]]:
    """(URI, what it is): AOC_BENCH_MONGO_URI when set, else SecantusDB in its own process."""
    configured = os.environ.get("AOC_BENCH_MONGO_URI")
    if configured:
        yield configured, "MongoDB (AOC_BENCH_MONGO_URI)"
        return
    port = _free_port()
    command = [str(Path(sys.executable).with_name("secantusd-py")), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--storage-path", str(workdir / "secantus"), "--log-level"]
    command += ["WARNING"]
    log_path = workdir / "secantus.log"
    with log_path.open("wb") as sink:
        server = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"SecantusDB did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.1)
        yield (
            f"mongodb://127.0.0.1:{port}",
            "SecantusDB 0.7 (test engine, own process: its figures say nothing of MongoDB)",
        )
    finally:
        stop(server)


def service_env(
    bootstrap: str, mongo_uri: str, database: str, args: argparse.Namespace, data_dir: Path
) -> dict[str, str]:
    env = {
        **os.environ,
        "LOG_ENGINE": "kafka",
        "STORE_ENGINE": "mongo",
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_PARTITIONS": str(args.partitions),
        "MONGO_URI": mongo_uri,
        "MONGO_DB": database,
        "NORMALIZER_RUNTIME": args.runtime,
        "NORMALIZER_WORKERS": str(args.workers),
        "DATA_DIR": str(data_dir),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    if not os.environ.get("AOC_BENCH_KAFKA"):  # Tansu: the settings INFRA.md gives for it
        env |= {
            "KAFKA_ENABLE_IDEMPOTENCE": "false",
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
        }
    return env


def start_services(env: dict[str, str], data_dir: Path) -> dict[str, subprocess.Popen[bytes]]:
    started = {}
    for name, module in (("normalizer", "aoc_normalizer"), ("store", "aoc_store")):
        log = (data_dir / f"{name}.log").open("wb")
        # Our own interpreter running AOC's own service modules.
        started[name] = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", module], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    return started


# --- watching the stages -----------------------------------------------------------------------------


class EventsReader:
    """Unique events of this run on `aoc.events`, read from the start by a consumer of our own.

    Counted by key, not by offsets: Tansu 0.6 answers ListOffsets(latest) short of the high watermark,
    and on a shared broker `aoc.events` holds earlier runs' events. A key is `<source>:<record id>`.
    """

    def __init__(self, bootstrap: str, record_ids: set[bytes]) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.record_ids = record_ids
        self.keys: set[bytes] = set()
        self.values: list[bytes] = []  # for the database floor

    async def start(self) -> None:
        await self.consumer.start()
        await self.consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(topics.EVENTS, p)
            for p in self.consumer.partitions_for_topic(topics.EVENTS) or ()
        ]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_beginning(*partitions)

    async def poll(self) -> int:
        batches = await self.consumer.getmany(timeout_ms=20, max_records=10_000)
        for messages in batches.values():
            for message in messages:
                key = message.key or b""
                if key.partition(b":")[2] in self.record_ids and key not in self.keys:
                    self.keys.add(key)
                    self.values.append(message.value or b"")
        return len(self.keys)

    async def stop(self) -> None:
        await self.consumer.stop()


def record_ids(generated: Generated) -> set[bytes]:
    return {message.key or b"" for _, message in generated.messages}


async def publish(message_log: KafkaMessageLog, generated: Generated) -> float:
    """Every record, in batches of 1,000 per topic; the rate (the publisher floor)."""
    started = time.perf_counter()
    for topic, batch in iter_batches(generated, 1000):
        await message_log.publish(topic, batch)
    return len(generated.messages) / (time.perf_counter() - started)


async def drain_backlog(
    services: dict[str, subprocess.Popen[bytes]],
    reader: EventsReader,
    store: MongoEventStore,
    expected: int,
    data_dir: Path,
) -> tuple[Stage, Stage, float]:
    """Each stage watched by its own loop, so a slow count in the database does not blur when the
    normalizer finished."""
    normalized, stored = Stage(), Stage()
    started = time.monotonic()
    deadline = started + 120 + expected / 50

    async def follow(stage: Stage, count: Callable[[], Awaitable[int]]) -> None:
        while stage.done is None:
            if any(p.poll() is not None for p in services.values()):
                raise SystemExit(f"a service stopped: see {data_dir}/*.log")
            if time.monotonic() > deadline:
                raise SystemExit(f"the backlog was not drained in time: see {data_dir}/*.log")
            counted = await count()
            stage.saw(counted, expected, time.monotonic())
            await asyncio.sleep(POLL_S / 5)

    await asyncio.gather(follow(normalized, reader.poll), follow(stored, store.count_events))
    return normalized, stored, stored.done - started  # type: ignore[operator]


async def offer(
    message_log: KafkaMessageLog,
    store: MongoEventStore,
    generated: Generated,
    already_stored: int,
    rate: int,
    seconds: float,
) -> Offered:
    """Publish at `rate` while watching the store; each tick's latency until all of it is counted."""
    result = Offered(rate, seconds)
    per_tick = max(1, int(rate * TICK_S))
    ticks = int(seconds / TICK_S)
    messages = generated.messages[: per_tick * ticks]
    published_at: list[tuple[int, float]] = []  # (unique records so far, when)
    watcher = asyncio.create_task(watch(store, published_at, result, already_stored, ticks))
    seen: set[bytes] = set()
    begin = time.monotonic()
    for tick in range(ticks):
        await asyncio.sleep(max(0.0, begin + tick * TICK_S - time.monotonic()))
        by_topic: dict[str, list[Message]] = {}
        for topic, message in messages[tick * per_tick : (tick + 1) * per_tick]:
            by_topic.setdefault(topic, []).append(message)
            seen.add(message.key or b"")
        for topic, batch in by_topic.items():
            await message_log.publish(topic, batch)
        published_at.append((len(seen), time.monotonic()))
    await watcher
    return result


async def watch(
    store: MongoEventStore,
    published_at: list[tuple[int, float]],
    result: Offered,
    already_stored: int,
    ticks: int,
) -> None:
    next_tick = 0
    give_up = time.monotonic() + result.seconds + 60
    while time.monotonic() < give_up and next_tick < ticks:
        stored = await store.count_events() - already_stored
        now = time.monotonic()
        while next_tick < len(published_at) and published_at[next_tick][0] <= stored:
            result.latencies_s.append(now - published_at[next_tick][1])
            next_tick += 1
        await asyncio.sleep(POLL_S)
    result.unfinished = ticks - next_tick


async def database_floors(
    store: MongoEventStore, database: str, values: list[bytes]
) -> dict[str, float]:
    """The run's own events by `insert_many`, no sink: into the events collection's indexes, and
    into `_id` only (what the indexes cost)."""
    documents = [document_for(EncodedEvent.from_json(value)) for value in values]
    same_indexes = store._started()[database]["bench_floor_same_indexes"]
    await same_indexes.create_indexes(event_indexes())
    collections = {
        "same indexes": same_indexes,
        "`_id` only": store._started()[database]["bench_floor_id_only"],
    }
    rates = {}
    for name, collection in collections.items():
        started = time.perf_counter()
        for start in range(0, len(documents), 500):
            batch = [dict(document) for document in documents[start : start + 500]]
            await collection.insert_many(batch, ordered=False)  # sets _id in what it is given
        rates[name] = len(documents) / (time.perf_counter() - started)
    return rates


async def drop(store: MongoEventStore, database: str) -> None:
    """The run's database dropped on a server the run does not own (ours is thrown away whole)."""
    try:
        if os.environ.get("AOC_BENCH_MONGO_URI"):
            await store._started().drop_database(database)
    except Exception as error:  # the figures are in; say what to clean up by hand
        print(f"could not drop the bench database {database}: {error}", file=sys.stderr)
    finally:
        await store.stop()


async def bench(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    backlog = generate(args.records, seed=seed)
    offered_records = generate(int(args.rate * args.seconds) + 1000, seed=seed + 1)
    database = f"aoc_bench_pipeline_{uuid.uuid4().hex[:8]}"
    failed = False
    with tempfile.TemporaryDirectory(prefix="aoc-bench-kafka-mongo-") as scratch:
        workdir = Path(scratch)
        with (
            kafka_broker(workdir / "broker.log") as (bootstrap, broker),
            mongo_server(workdir) as (mongo_uri, mongo),
        ):
            print(f"production pipeline, {datetime.now(UTC):%Y-%m-%d}; {machine()}")
            print(f"engines: {broker}; {mongo}")
            print(
                f"normalizer: NORMALIZER_RUNTIME={args.runtime}, NORMALIZER_WORKERS={args.workers}; "
                f"{args.partitions} partitions per topic"
            )
            options = {} if os.environ.get("AOC_BENCH_KAFKA") else TANSU_OPTIONS
            message_log = KafkaMessageLog(bootstrap, default_partitions=args.partitions, **options)
            store = MongoEventStore(mongo_uri, database, retention_days=3650)
            await message_log.start()
            await store.start()
            reader = EventsReader(bootstrap, record_ids(backlog) | record_ids(offered_records))
            services: dict[str, subprocess.Popen[bytes]] = {}
            try:
                await message_log.ensure_topics(topics.ALL_TOPICS, partitions=args.partitions)
                await reader.start()
                publish_floor = await publish(message_log, backlog)
                env = service_env(bootstrap, mongo_uri, database, args, workdir / "data")
                (workdir / "data").mkdir()
                services = start_services(env, workdir)
                normalized, stored, searchable_s = await drain_backlog(
                    services, reader, store, backlog.unique, workdir
                )
                run = await offer(
                    message_log,
                    store,
                    offered_records,
                    backlog.unique,
                    args.rate,
                    args.seconds,
                )
                peaks = {name: peak_rss_mb(p.pid) for name, p in services.items()}
            finally:
                for process in services.values():
                    stop(process)
                await reader.stop()
                await message_log.stop()
            try:
                floors = await database_floors(store, database, reader.values[: backlog.unique])
            finally:
                await drop(store, database)
    print(
        f"floors: publish to the raw topics {publish_floor:,.0f} records/s; insert_many "
        + ", ".join(f"into {name} {rate:,.0f} events/s" for name, rate in floors.items())
    )
    print(f"\nbacklog of {len(backlog.messages):,} raw records ({backlog.unique:,} unique):")
    print("| normalizer events/s | store events/s | all searchable after | peak memory |")
    print("|---:|---:|---:|---|")
    memory = ", ".join(f"{name} {mb:,.0f} MB" for name, mb in peaks.items() if mb)
    print(
        f"| {normalized.rate(backlog.unique)} | {stored.rate(backlog.unique)} | "
        f"{searchable_s:.1f} s | {memory} |"
    )
    print(f"\noffered {args.rate:,} records/s for {args.seconds:.0f} s:")
    print("| ingest→searchable p50 | p99 | median per tenth of the run | unfinished |")
    print("|---:|---:|---|---:|")
    print(
        f"| {run.percentile(0.5) * 1000:,.0f} ms | {run.percentile(0.99) * 1000:,.0f} ms | "
        f"{run.per_tenth_ms()} ms | {run.unfinished} ticks |"
    )
    failed |= run.unfinished > 0
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="backlog size")
    parser.add_argument("--rate", type=int, default=2000, help="offered records per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the rate is offered")
    parser.add_argument("--partitions", type=int, default=6, help="partitions per topic")
    parser.add_argument("--runtime", choices=RUNTIMES, default="consumer")
    parser.add_argument("--workers", type=int, default=0, help="NORMALIZER_WORKERS")
    parser.add_argument("--seed", type=int, default=None, help="default: a new one each run")
    return asyncio.run(bench(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
