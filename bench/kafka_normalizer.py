"""The normalizer on Kafka against its floor and a peer, in one run: `python bench/kafka_normalizer.py [N]`.

The same N raw records (bench/generate.py: every source, 2 % duplicates, keyed by record id as the
collector publishes them) are handled by each contender in turn, each in its own process(es), each on a
fresh private in-memory Tansu holding just those records (AOC writes fixed topic names and keeps its
group and dedupe changelog on the broker, so every contender starts equal):

- **floor**: a plain aiokafka consume → produce copy (getmany, send without awaiting each, await the
  batch's acknowledgements, commit): the most any Python consumer-producer can do on this broker;
- **quixstreams**: the same job as AOC's normalizer written with quixstreams 3 (librdkafka underneath),
  calling AOC's own `normalize_message` per record, a stateful dedupe on the record key (its state and
  changelog on the raw partition), events keyed by dedupe_key, dead letters to their own topic;
- **aoc**: `python -m aoc_normalizer` — AOC's Faust normalizer exactly as `aoc run normalizer` runs it
  (and **aoc-2-workers**: two of them in the group, Faust's way to use a second core);
- **faust-ceiling**: Faust's own consumer path doing no work (take_events → copy out);
- **aoc-consumer**: `python -m aoc_normalizer` with `NORMALIZER_RUNTIME=consumer` — AOC's step on its
  own aiokafka consumer (the opt-in runtime), **aoc-consumer-2**: two of them in the group, and
  **aoc-consumer-pool**: one of them mapping in two worker processes (`NORMALIZER_WORKERS=2`).

Each rate is events out / (last output − first output), read from the output topics by this process,
so start-up, group join and table recovery are left out (and printed separately). With
AOC_BENCH_KAFKA set, everything runs on that broker, which cannot be made fresh: one AOC row per run.
The AOC and quixstreams rows also check the job: exactly one event per unique record, nothing dead-lettered.
quixstreams is a bench-only dependency (`pip install -e '.[bench]'`); without it that row is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from engines import cpu_seconds, kafka_broker, machine, peak_rss_mb, stop
from generate import Generated, generate

from aoc_common import topics

QUIX_EVENTS = "bench.quix.events"
QUIX_DLQ = "bench.quix.dlq"
RETENTION_MS = str(7 * 86_400_000)  # quixstreams' stateful mode needs retention.ms on its inputs
CONTENDERS = (
    "floor",
    "faust-ceiling",
    "quixstreams",
    "aoc",
    "aoc-2-workers",
    "aoc-consumer",
    "aoc-consumer-2",
    "aoc-consumer-pool",
)
COPIES = {"floor": "bench.floor", "faust-ceiling": "bench.faust-ceiling"}
# Rows that run `python -m aoc_normalizer`: (instances, NORMALIZER_RUNTIME, NORMALIZER_WORKERS).
AOC_ROWS = {
    "aoc": (1, "faust", 0),
    "aoc-2-workers": (2, "faust", 0),
    "aoc-consumer": (1, "consumer", 0),
    "aoc-consumer-2": (2, "consumer", 0),
    "aoc-consumer-pool": (1, "consumer", 2),
}
SESSION = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "rebalance_timeout_ms": 5000}


@dataclass
class Outcome:
    name: str
    rate: float  # events/s between first and last output
    startup_s: float  # from process start to its first output
    events: int
    distinct: int  # distinct keys among the events: fewer than events means duplicates
    dead: int
    expected: int
    peak_mb: float | None
    cpu_us: float = 0.0  # CPU time of the contender's processes per event, first to last output

    @property
    def correct(self) -> bool:
        return self.events == self.distinct == self.expected and self.dead == 0


# --- the contenders (each runs in its own process) ------------------------------------------------


async def run_floor(bootstrap: str) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    consumer = AIOKafkaConsumer(
        *topics.RAW_TOPICS,
        bootstrap_servers=bootstrap,
        group_id="bench-floor",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **SESSION,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await consumer.start()
    await producer.start()
    try:
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            deliveries = [
                await producer.send(COPIES["floor"], message.value, key=message.key)
                for messages in batches.values()
                for message in messages
            ]
            if deliveries:
                await asyncio.gather(*deliveries)
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


def run_faust_ceiling(bootstrap: str, state_dir: str) -> None:
    """Faust's own consumer path with no work: batches taken and copied out as record batches.

    The most any Faust agent can do on this broker, whatever it computes: the per-message cost of
    Faust's fetcher, conductor and stream (a task pair, an event and a queue hop per message).
    """
    import faust

    from aoc_common.message_log.base import Message
    from aoc_normalizer.faust_app import RecordBatchPublisher

    app = faust.App(
        "bench-faust-ceiling",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        datadir=state_dir,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=5.0,
        producer_max_batch_size=512 * 1024,
        producer_linger_ms=5,
    )
    out = app.topic(COPIES["faust-ceiling"], key_serializer="raw", value_serializer="raw")
    publisher = RecordBatchPublisher(app)

    async def copy(stream: faust.StreamT[bytes]) -> None:
        async for batch in stream.take_events(1000, within=1.0):
            messages = [Message(e.message.key, e.message.value) for e in batch]
            await asyncio.gather(*await publisher.send(out, messages))

    for raw in topics.RAW_TOPICS:
        source = app.topic(raw, key_serializer="raw", value_serializer="raw")
        app.agent(source, name=f"copy-{raw}")(copy)

    async def work() -> None:  # as AOC starts its app: no Faust CLI, no web server
        halt = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, halt.set)
        await app.start()
        try:
            await halt.wait()
        finally:
            await app.stop()

    asyncio.run(work())


def run_quixstreams(bootstrap: str, state_dir: str) -> None:
    """AOC's normalizer job in quixstreams: normalize, dedupe on the record key, route, produce."""
    from quixstreams import Application
    from quixstreams.models.serializers import Serializer

    from aoc_common.codec import encode, encode_key
    from aoc_common.dead_letter import DeadLetter
    from aoc_common.events import utc_now
    from aoc_common.message_log.base import Record
    from aoc_normalizer.core import Limits, normalize_message
    from aoc_normalizer.dedupe import DedupeWindow, now_ms
    from aoc_normalizer.mappings import load_mappings

    class Payload(Serializer):
        """Values travel through the dataframe as (dead?, key, bytes); the topic gets the bytes."""

        def __call__(self, value: tuple[bool, bytes | None, bytes], ctx: object) -> bytes:
            return value[2]

    mappings = load_mappings(Path(__file__).resolve().parents[1] / "mappings.yml")
    window = DedupeWindow()
    limits = Limits()
    app = Application(
        broker_address=bootstrap,
        consumer_group="bench-quixstreams",
        auto_offset_reset="earliest",
        state_dir=state_dir,
        processing_guarantee="at-least-once",
        loglevel="WARNING",
    )
    events = app.topic(QUIX_EVENTS, key_serializer="bytes", value_serializer=Payload())
    dlq = app.topic(QUIX_DLQ, key_serializer="bytes", value_serializer=Payload())

    def judge(topic: str):  # a closure per raw topic
        def step(value: bytes, key: bytes, timestamp: int, headers: object, state):
            now = utc_now()
            record = Record(topic, 0, 0, key, value, timestamp)
            outcome = normalize_message(record, mappings, now=now, limits=limits)
            if isinstance(outcome, DeadLetter):
                return (True, key, encode(outcome))
            at_ms = now_ms(now)
            if window.seen_recently(state.get(outcome.dedupe_key), at_ms):
                return None
            state.set(outcome.dedupe_key, at_ms)
            return (False, encode_key(outcome.dedupe_key), encode(outcome))

        return step

    for raw in topics.RAW_TOPICS:
        source = app.topic(raw, key_deserializer="bytes", value_deserializer="bytes")
        sdf = app.dataframe(source)
        sdf = sdf.apply(judge(raw), stateful=True, metadata=True)
        sdf = sdf.filter(lambda judged: judged is not None)
        sdf.to_topic(lambda value, *_: dlq if value[0] else events, key=lambda value: value[1])
    app.run()


# --- the measuring side ------------------------------------------------------------------------------


async def prepare(bootstrap: str, generated: Generated, partitions: int) -> None:
    """Topics created, the raw records published."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        config = {"retention.ms": RETENTION_MS}
        wanted = [NewTopic(t, partitions, 1, topic_configs=config) for t in topics.RAW_TOPICS]
        wanted += [
            NewTopic(t, partitions, 1)
            for t in (
                *COPIES.values(),
                QUIX_EVENTS,
                QUIX_DLQ,
                topics.EVENTS,
                topics.DLQ,
                topics.ALERTS,
            )
        ]
        await admin.create_topics(wanted)
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    try:
        for start in range(0, len(generated.messages), 5000):
            chunk = generated.messages[start : start + 5000]
            deliveries = [await producer.send(t, m.value, key=m.key) for t, m in chunk]
            await asyncio.gather(*deliveries)
    finally:
        await producer.stop()


class OutputReader:
    """Counts what a contender published by reading its output topics from the start.

    Not by end offsets: Tansu 0.6 answers ListOffsets(latest) with the base offset of the partition's
    last record batch, short of the high watermark (1,000 records produced → 871). Reading also lets
    the bench count distinct keys, i.e. see a duplicate.
    """

    def __init__(self, bootstrap: str, names: Sequence[str]) -> None:
        self.names = list(names)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.counts = dict.fromkeys(self.names, 0)
        self.keys: set[bytes | None] = set()

    async def start(self) -> None:
        await self.consumer.start()
        await self.consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(name, p)
            for name in self.names
            for p in self.consumer.partitions_for_topic(name) or ()
        ]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_beginning(*partitions)

    async def poll(self, timeout_ms: int = 50) -> None:
        batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=10_000)
        for tp, messages in batches.items():
            self.counts[tp.topic] += len(messages)
            if tp.topic == self.names[0]:
                self.keys.update(m.key for m in messages)

    async def stop(self) -> None:
        await self.consumer.stop()

    @property
    def events(self) -> int:
        return self.counts[self.names[0]]

    @property
    def dead(self) -> int:
        return sum(self.counts[n] for n in self.names[1:])


async def measure(
    name: str,
    processes: list[subprocess.Popen[bytes]],
    bootstrap: str,
    outputs: tuple[str, str | None],
    expected: int,
    timeout_s: float,
) -> Outcome:
    """Read the output topics until `expected` events are out (or the time is up), then stop it."""
    process = processes[0]
    pids = [p.pid for p in processes]
    reader = OutputReader(bootstrap, [t for t in outputs if t])
    await reader.start()
    started = time.monotonic()
    first = last = None
    cpu_first = cpu_last = 0.0
    try:
        deadline = started + timeout_s
        while time.monotonic() < deadline and process.poll() is None:
            await reader.poll()
            now = time.monotonic()
            if reader.events and first is None:
                first = now
                cpu_first = cpu_seconds(pids)
            if reader.events + reader.dead >= expected:
                last = now
                cpu_last = cpu_seconds(pids)
                break
        if last is not None:
            # Anything published after "done" would be a duplicate: give it a moment to show.
            settle = time.monotonic() + 1.0
            while time.monotonic() < settle:
                await reader.poll(100)
    finally:
        await reader.stop()
        peak = peak_rss_mb(process.pid)
        stop(process)
    events, dead = reader.events, reader.dead
    distinct = len(reader.keys)
    if first is None or last is None:
        print(f"  {name}: only {events} of {expected} events within {timeout_s:.0f} s")
        return Outcome(name, 0.0, 0.0, events, distinct, dead, expected, peak)
    span = max(last - first, 1e-3)
    cpu_us = (cpu_last - cpu_first) * 1e6 / expected
    return Outcome(
        name, expected / span, first - started, events, distinct, dead, expected, peak, cpu_us
    )


def spawn(
    name: str, bootstrap: str, partitions: int, workdir: Path, instance: int = 1
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = (workdir / f"{name}-{instance}.log").open("wb")
    if name in AOC_ROWS:
        env.update(
            NORMALIZER_RUNTIME=AOC_ROWS[name][1],
            NORMALIZER_WORKERS=str(AOC_ROWS[name][2]),
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            KAFKA_ENABLE_IDEMPOTENCE="false",  # Tansu cannot initialise idempotent producers
            KAFKA_TOPIC_PARTITIONS=str(partitions),
            KAFKA_SESSION_TIMEOUT_MS="6000",
            KAFKA_HEARTBEAT_INTERVAL_MS="1000",
            DATA_DIR=str(workdir / f"{name}-data-{instance}"),
            LOG_LEVEL="WARNING",
        )
        command = [sys.executable, "-m", "aoc_normalizer"]
    else:
        command = [sys.executable, __file__, "--contender", name, "--bootstrap", bootstrap]
        command += ["--state-dir", str(workdir / f"{name}-state")]
    # Our own interpreter and script, with arguments this bench built.
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603


def has_quixstreams() -> bool:
    try:
        import quixstreams  # noqa: F401
    except ImportError:
        return False
    return True


OUTPUTS: dict[str, tuple[str, str | None]] = {
    "floor": (COPIES["floor"], None),
    "faust-ceiling": (COPIES["faust-ceiling"], None),
    "quixstreams": (QUIX_EVENTS, QUIX_DLQ),
    **{name: (topics.EVENTS, topics.DLQ) for name in AOC_ROWS},
}


async def one_round(
    generated: Generated, partitions: int, wanted: Sequence[str], workdir: Path
) -> tuple[list[Outcome], str]:
    """Every wanted contender once, each on a fresh broker holding the same raw records."""
    outcomes = []
    engine = ""
    shared = os.environ.get("AOC_BENCH_KAFKA")
    for name in wanted:
        with kafka_broker(workdir / f"broker-{name}.log") as (bootstrap, described):
            engine = described
            if not shared or not outcomes:
                await prepare(bootstrap, generated, partitions)
            outcomes.append(await contend(name, bootstrap, generated, partitions, workdir))
    return outcomes, engine


async def contend(
    name: str, bootstrap: str, generated: Generated, partitions: int, workdir: Path
) -> Outcome:
    records, unique = len(generated.messages), generated.unique
    expected = records if name in COPIES else unique
    instances = AOC_ROWS.get(name, (1, "", 0))[0]
    processes = [spawn(name, bootstrap, partitions, workdir, n + 1) for n in range(instances)]
    profile = os.environ.get("AOC_BENCH_PROFILE")  # collapsed stacks of AOC's worker (py-spy)
    if profile and name in ("aoc", "aoc-consumer"):
        command = ["py-spy", "record", "-f", "raw", "-o", profile, "--pid", str(processes[0].pid)]
        subprocess.Popen([*command, "-r", os.environ.get("AOC_BENCH_PROFILE_RATE", "50")])  # noqa: S603, ASYNC220 - a developer option
    outcome = await measure(
        name, processes, bootstrap, OUTPUTS[name], expected, 60 + expected / 200
    )
    for other in processes[1:]:
        other_peak = peak_rss_mb(other.pid)
        stop(other)
        if outcome.peak_mb and other_peak:
            outcome.peak_mb += other_peak
    print(
        f"  {name:<17} {outcome.rate:>7,.0f} events/s  {outcome.cpu_us:5.0f} µs CPU/event  "
        f"start-up {outcome.startup_s:4.1f} s  "
        f"{outcome.events:,} events ({outcome.distinct:,} keys), {outcome.dead} dead letters"
        + ("" if name in COPIES or outcome.correct else "  << WRONG COUNT")
        + (f"  peak {outcome.peak_mb:,.0f} MB" if outcome.peak_mb else "")
    )
    if not outcome.rate:
        tail = (workdir / f"{name}-1.log").read_text(errors="replace").splitlines()[-25:]
        print("\n".join(f"    | {line}" for line in tail))
    return outcome


def core_cpu_us(generated: Generated, sample: int = 5000) -> float:
    """CPU time per event of what every contender with AOC's job pays: mapping and encoding."""
    from aoc_common.codec import encode
    from aoc_common.events import utc_now
    from aoc_common.message_log.base import Record
    from aoc_normalizer.core import normalize_message
    from aoc_normalizer.mappings import load_mappings

    mappings = load_mappings(Path(__file__).resolve().parents[1] / "mappings.yml")
    records = [
        Record(topic, 0, n, m.key, m.value, 0)
        for n, (topic, m) in enumerate(generated.messages[:sample])
    ]
    now = utc_now()
    started = time.process_time()
    for record in records:
        encode(normalize_message(record, mappings, now=now))
    return (time.process_time() - started) * 1e6 / max(len(records), 1)


def report(rounds: list[list[Outcome]], engine: str, count: int, core_us: float) -> int:
    by_name: dict[str, list[Outcome]] = {}
    for outcomes in rounds:
        for outcome in outcomes:
            by_name.setdefault(outcome.name, []).append(outcome)
    medians = {name: statistics.median(o.rate for o in found) for name, found in by_name.items()}
    floor = medians.get("floor")
    print(
        f"\nkafka normalizer, {count:,} raw records, median of {len(rounds)} round(s), "
        f"{datetime.now(UTC):%Y-%m-%d}, {engine}; {machine()}; normalizer core alone "
        f"{core_us:.0f} µs CPU per event"
    )
    print("| contender | events/s | of the floor | CPU µs per event | correct |")
    print("|---|---:|---:|---:|---|")
    for name, rate in medians.items():
        share = f"{rate / floor:.0%}" if floor else "n/a"
        cpu = statistics.median(o.cpu_us for o in by_name[name])
        correct = "n/a" if name in COPIES else str(all(o.correct for o in by_name[name]))
        print(f"| {name} | {rate:,.0f} | {share} | {cpu:,.0f} | {correct} |")
    wrong = any(
        not o.correct for name, found in by_name.items() if name not in COPIES for o in found
    )
    return 1 if wrong else 0


async def bench(args: argparse.Namespace) -> int:
    wanted = [c for c in args.only or CONTENDERS]
    if os.environ.get("AOC_BENCH_KAFKA") and len(set(wanted) & set(AOC_ROWS)) > 1:
        raise SystemExit("on a shared broker (AOC_BENCH_KAFKA) run one AOC row per run: --only")
    if "quixstreams" in wanted and not has_quixstreams():
        print("quixstreams is not installed (pip install -e '.[bench]'): skipping that row")
        wanted.remove("quixstreams")
    generated = generate(args.count, seed=args.seed)
    print(
        f"{len(generated.messages):,} raw records ({generated.unique:,} unique) on "
        f"{args.partitions} partitions"
    )
    core_us = core_cpu_us(generated)
    print(
        f"normalizer core alone (normalize_message + encode, no Kafka): {core_us:.0f} µs CPU/event"
    )
    rounds = []
    engine = ""
    with tempfile.TemporaryDirectory(prefix="aoc-bench-kafka-") as scratch:
        for number in range(args.rounds):
            workdir = Path(scratch) / f"round{number}"
            workdir.mkdir()
            print(f"round {number + 1} of {args.rounds}")
            outcomes, engine = await one_round(generated, args.partitions, wanted, workdir)
            rounds.append(outcomes)
            if os.environ.get("AOC_BENCH_KAFKA"):
                break  # a shared broker cannot be made fresh: one round only
    return report(rounds, engine, args.count, core_us)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, nargs="?", default=50_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", action="append", choices=CONTENDERS)
    parser.add_argument("--contender", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.contender == "floor":
        asyncio.run(run_floor(args.bootstrap))
        return 0
    if args.contender == "quixstreams":
        run_quixstreams(args.bootstrap, args.state_dir)
        return 0
    if args.contender == "faust-ceiling":
        run_faust_ceiling(args.bootstrap, args.state_dir)
        return 0
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
