"""The embedded pipeline end to end: `python bench/pipeline.py [--rate 5000] [--seconds 60]`.

Raw records from bench/generate.py (every source, 2 % duplicates) go through the normalizer and the
store sink on the embedded engines (SQLite log, SQLite store), in two layouts measured in the same run:

- **processes**: `python -m aoc_normalizer` and `python -m aoc_store`, each in its own process, as
  `aoc run` starts them (and `aoc demo` does);
- **one-process**: both services in one interpreter, as `aoc demo` ran them before.

For each layout, two phases on fresh data folders:
1. *backlog*: N records published up front, then the services started: how fast each stage drains it
   once it has started (normalizer: records read per second until every event is on `aoc.events`;
   store: events searchable per second), the time until all is searchable (start-up included), and
   each service's peak memory;
2. *offered rate*: records published by this process at a fixed rate (every 100 ms) for S seconds while
   the services run; ingest → searchable latency per publish tick (the time until the store counts
   every unique record of that tick), p50/p99 overall and the median per tenth of the run, which shows
   whether the pipeline keeps up (flat) or falls behind (growing).
Floors in the same run: the same records inserted into the embedded log alone (what the publisher can
offer), and the normalizer core alone on one core (`normalize_message`, no I/O).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from engines import cpu_seconds, machine, peak_rss_mb, stop
from generate import Generated, generate, iter_batches

from aoc_common import topics
from aoc_common.event_store.sqlite import SqliteEventStore
from aoc_common.message_log.base import Message, Record
from aoc_common.message_log.embedded import EmbeddedMessageLog

LAYOUTS = ("processes", "one-process")
TICK_S = 0.1
POLL_S = 0.05


@dataclass
class Backlog:
    layout: str
    records: int
    normalizer_rate: float
    store_rate: float
    end_to_end_s: float
    peak_mb: dict[str, float | None]


@dataclass
class Offered:
    layout: str
    rate: int
    seconds: float
    latencies_s: list[float] = field(default_factory=list)
    per_tenth_s: list[float] = field(default_factory=list)
    unfinished: int = 0
    peak_mb: dict[str, float | None] = field(default_factory=dict)
    stages: Stages | None = None

    def percentile(self, share: float) -> float:
        return percentile(self.latencies_s, share)


@dataclass
class Stages:
    """Where each tick's latency went: publish → on `aoc.events` (normalizer) → counted (store).

    A tick's normalizer time ends at the last of its events appended to `aoc.events` (the log's own
    append timestamp); its store time is the rest. `late_ms` is how far the publisher itself fell
    behind its schedule (a late publisher offers less than the rate); WAL sizes are the largest seen
    per tenth of the run, in MB, for the log and the store files. `count_s` is how long each of the
    watcher's counts took (it runs in this process, beside the publisher); CPU per event is each
    process's CPU time over the offered run divided by the unique records offered.
    """

    normalizer_s: list[float]
    store_s: list[float]
    late_s: list[float]
    log_wal_mb: list[float]
    store_wal_mb: list[float]
    count_s: list[float]
    cpu_us_per_event: dict[str, float]


# --- the services under test ---------------------------------------------------------------------


def service_env(data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LOG_ENGINE": "embedded",
        "STORE_ENGINE": "embedded",
        "KAFKA_BOOTSTRAP_SERVERS": "",
        "MONGO_URI": "",
        "DATA_DIR": str(data_dir),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }


def start_services(layout: str, data_dir: Path) -> dict[str, subprocess.Popen[bytes]]:
    """The normalizer and the store, laid out as asked; their output goes to files beside the data."""
    env = service_env(data_dir)
    if layout == "processes":
        commands = {
            "normalizer": [sys.executable, "-m", "aoc_normalizer"],
            "store": [sys.executable, "-m", "aoc_store"],
        }
    else:
        commands = {"normalizer+store": [sys.executable, __file__, "--one-process"]}
    started = {}
    for name, command in commands.items():
        log = (data_dir / f"{name}.log").open("wb")
        # Our own interpreter, with arguments this bench built.
        started[name] = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    return started


def stop_services(services: dict[str, subprocess.Popen[bytes]]) -> dict[str, float | None]:
    peaks = {name: peak_rss_mb(process.pid) for name, process in services.items()}
    for process in services.values():
        stop(process)
    return peaks


async def run_one_process() -> None:
    """Both services in this interpreter, on one pair of engines (the demo's old layout)."""
    import signal

    from aoc_common.settings import load_settings
    from aoc_normalizer.runtime import Normalizer
    from aoc_store.runtime import StoreSink

    settings = load_settings()
    halt = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, halt.set)
    message_log = EmbeddedMessageLog(settings.data_dir / "log.sqlite3")
    store = SqliteEventStore(
        settings.data_dir / "events.sqlite3", retention_days=settings.retention_days
    )
    await message_log.start()
    await store.start()
    try:
        await asyncio.gather(
            Normalizer.from_settings(message_log, settings).run(halt),
            StoreSink(message_log, store).run(halt),
        )
    finally:
        await store.stop()
        await message_log.stop()


# --- measuring ---------------------------------------------------------------------------------------


async def open_engines(data_dir: Path) -> tuple[EmbeddedMessageLog, SqliteEventStore]:
    message_log = EmbeddedMessageLog(data_dir / "log.sqlite3")
    store = SqliteEventStore(data_dir / "events.sqlite3", retention_days=3650)
    await message_log.start()
    await message_log.ensure_topics(topics.ALL_TOPICS)
    await store.start()
    return message_log, store


async def publish_all(message_log: EmbeddedMessageLog, generated: Generated) -> None:
    for topic, batch in iter_batches(generated, 1000):
        await message_log.publish(topic, batch)


async def events_out(message_log: EmbeddedMessageLog) -> int:
    return sum((await message_log.end_offsets(topics.EVENTS)).values())


async def backlog(layout: str, generated: Generated, workdir: Path) -> Backlog:
    data_dir = workdir / f"{layout}-backlog"
    data_dir.mkdir()
    message_log, store = await open_engines(data_dir)
    try:
        await publish_all(message_log, generated)
        expected = generated.unique
        services = start_services(layout, data_dir)
        started = time.monotonic()
        normalized_at = stored_at = first_stored = first_normalized = None
        deadline = started + 120 + expected / 500
        try:
            while time.monotonic() < deadline and stored_at is None:
                if any(p.poll() is not None for p in services.values()):
                    raise SystemExit(f"a service stopped: see {data_dir}/*.log")
                now = time.monotonic()
                normalized = await events_out(message_log) if normalized_at is None else expected
                if normalized and first_normalized is None:
                    first_normalized = now
                if normalized_at is None and normalized >= expected:
                    normalized_at = now
                stored = await store.count_events()
                if stored and first_stored is None:
                    first_stored = now
                if stored >= expected:
                    stored_at = now
                await asyncio.sleep(POLL_S)
        finally:
            peaks = stop_services(services)
    finally:
        await store.stop()
        await message_log.stop()
    if None in (stored_at, normalized_at, first_stored, first_normalized):
        raise SystemExit(f"{layout}: the backlog was not drained in time: see {data_dir}/*.log")
    return Backlog(
        layout,
        len(generated.messages),
        len(generated.messages) / max(normalized_at - first_normalized, 1e-3),  # type: ignore[operator]
        expected / max(stored_at - first_stored, 1e-3),  # type: ignore[operator]
        stored_at - started,  # type: ignore[operator]
        peaks,
    )


async def offered(
    layout: str, generated: Generated, rate: int, seconds: float, workdir: Path
) -> Offered:
    data_dir = workdir / f"{layout}-offered"
    data_dir.mkdir()
    message_log, store = await open_engines(data_dir)
    result = Offered(layout, rate, seconds)
    per_tick = max(1, int(rate * TICK_S))
    ticks = int(seconds / TICK_S)
    messages = generated.messages[: per_tick * ticks]
    services = start_services(layout, data_dir)
    try:
        await asyncio.sleep(3.0)  # let the services start before the clock runs
        published_at: list[tuple[int, float]] = []  # (unique records so far, when)
        tick_of: dict[bytes, int] = {}  # record id → the tick that first published it
        late: list[float] = []
        seen: set[bytes] = set()
        wal_sizes: list[tuple[float, float, float]] = []
        count_s: list[float] = []
        cpu_before = {name: cpu_seconds([p.pid]) for name, p in services.items()}
        cpu_before["bench (publisher + watcher)"] = time.process_time()
        counter = StoredCounter(data_dir / "events.sqlite3")
        watcher = asyncio.create_task(
            watch(counter, published_at, result, seconds, data_dir, wal_sizes, count_s)
        )
        begin = time.monotonic()
        for tick in range(ticks):
            due = begin + tick * TICK_S
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            late.append(max(0.0, time.monotonic() - due))
            chunk = messages[tick * per_tick : (tick + 1) * per_tick]
            by_topic: dict[str, list[Message]] = {}
            for topic, message in chunk:
                by_topic.setdefault(topic, []).append(message)
                seen.add(message.key or b"")
                tick_of.setdefault(message.key or b"", tick)
            for topic, batch in by_topic.items():
                await message_log.publish(topic, batch)
            published_at.append((len(seen), time.monotonic()))
        await watcher
        counted = counter.count()
        counter.close()
        if result.unfinished == 0 and counted != await store.count_events():
            raise SystemExit(f"{layout}: the running count missed events: see {data_dir}/*.log")
        cpu = {name: cpu_seconds([p.pid]) - cpu_before[name] for name, p in services.items()}
        cpu["bench (publisher + watcher)"] = time.process_time() - cpu_before.pop(
            "bench (publisher + watcher)"
        )
        cpu_per_event = {name: used / max(len(seen), 1) * 1e6 for name, used in cpu.items()}
    finally:
        result.peak_mb = stop_services(services)
        await store.stop()
        await message_log.stop()
    result.stages = stages(data_dir, result, published_at, tick_of, late, wal_sizes, begin)
    result.stages.count_s = count_s
    result.stages.cpu_us_per_event = cpu_per_event
    return result


def stages(
    data_dir: Path,
    result: Offered,
    published_at: list[tuple[int, float]],
    tick_of: dict[bytes, int],
    late: list[float],
    wal_sizes: list[tuple[float, float, float]],
    begin: float,
) -> Stages:
    """Split each finished tick's latency at the moment its last event reached `aoc.events`."""
    wall_minus_monotonic = time.time() - time.monotonic()
    normalized_at: dict[int, float] = {}
    with contextlib.closing(sqlite3.connect(data_dir / "log.sqlite3")) as db:
        rows = db.execute(
            "SELECT key, timestamp_ms FROM messages WHERE topic = ?", (topics.EVENTS,)
        )
        for key, at_ms in rows:
            tick = tick_of.get(bytes(key).split(b":", 1)[-1])
            if tick is not None:
                at = at_ms / 1000 - wall_minus_monotonic
                normalized_at[tick] = max(normalized_at.get(tick, at), at)
    normalizer_s, store_s = [], []
    for tick, latency in enumerate(result.latencies_s):
        published = published_at[tick][1]
        # Ticks are counted in order, so a tick's normalizer time includes waiting for earlier ones.
        done = max(normalized_at.get(t, published) for t in range(tick + 1))
        normalizer_s.append(max(0.0, done - published))
        store_s.append(max(0.0, latency - (done - published)))
    log_wal: list[float] = [0.0] * 10
    store_wal: list[float] = [0.0] * 10
    span = max(result.seconds, 1e-3)
    for at, log_mb, store_mb in wal_sizes:
        tenth = min(9, max(0, int((at - begin) / span * 10)))
        log_wal[tenth] = max(log_wal[tenth], log_mb)
        store_wal[tenth] = max(store_wal[tenth], store_mb)
    return Stages(normalizer_s, store_s, late, log_wal, store_wal, [], {})


class StoredCounter:
    """Events in the store, counted from where the last count ended (`seq` above the last seen).

    `count(*)` re-reads the whole table: at 300k events it cost this process (the publisher's) tens of
    milliseconds every 50 ms poll, CPU the two services need on a two-core machine, growing through
    the run. The sink only appends rows (an upsert of a known event keeps its `seq`) and nothing is
    purged during a run, so the running total is exact; `offered` checks it against `count(*)` once
    at the end.
    """

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self.total = 0
        self._last_seq = 0

    def count(self) -> int:
        added, top = self._db.execute(
            "SELECT count(*), max(seq) FROM events WHERE seq > ?", (self._last_seq,)
        ).fetchone()
        if top is not None:
            self.total += added
            self._last_seq = top
        return self.total

    def close(self) -> None:
        self._db.close()


async def watch(
    counter: StoredCounter,
    published_at: list[tuple[int, float]],
    result: Offered,
    seconds: float,
    data_dir: Path,
    wal_sizes: list[tuple[float, float, float]],
    count_s: list[float],
) -> None:
    """Each tick's latency: from its publish to the first poll where the store counts all of it."""
    next_tick = 0
    give_up = time.monotonic() + seconds + 60
    while time.monotonic() < give_up:
        asked = time.monotonic()
        stored = await asyncio.to_thread(counter.count)
        now = time.monotonic()
        count_s.append(now - asked)
        wal_sizes.append(
            (now, wal_mb(data_dir / "log.sqlite3"), wal_mb(data_dir / "events.sqlite3"))
        )
        while next_tick < len(published_at) and published_at[next_tick][0] <= stored:
            result.latencies_s.append(now - published_at[next_tick][1])
            next_tick += 1
        if next_tick >= int(seconds / TICK_S):
            break
        await asyncio.sleep(POLL_S)
    result.unfinished = int(seconds / TICK_S) - next_tick
    result.per_tenth_s = per_tenth(result.latencies_s)


def wal_mb(database: Path) -> float:
    try:
        return (database.parent / f"{database.name}-wal").stat().st_size / 1e6
    except FileNotFoundError:
        return 0.0


def per_tenth(values: list[float]) -> list[float]:
    size = max(1, len(values) // 10)
    return [statistics.median(values[i : i + size]) for i in range(0, len(values), size)][:10]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def log_floor(generated: Generated, workdir: Path) -> float:
    """The same records into the embedded log alone, in batches of 1,000: what a publisher can offer."""
    data_dir = workdir / "log-floor"
    data_dir.mkdir()
    message_log = EmbeddedMessageLog(data_dir / "log.sqlite3")
    await message_log.start()
    try:
        await message_log.ensure_topics(topics.RAW_TOPICS)
        started = time.perf_counter()
        await publish_all(message_log, generated)
        return len(generated.messages) / (time.perf_counter() - started)
    finally:
        await message_log.stop()


def core_floor(generated: Generated) -> float:
    """normalize_message alone on this core (no I/O): the work the normalizer cannot avoid."""
    from aoc_normalizer.core import normalize_message
    from aoc_normalizer.mappings import load_mappings

    mappings = load_mappings(Path(__file__).resolve().parents[1] / "mappings.yml")
    now = datetime.now(UTC)
    sample = generated.messages[:20_000]
    started = time.perf_counter()
    for offset, (topic, message) in enumerate(sample):
        normalize_message(
            Record(topic, 0, offset, message.key, message.value, 0), mappings, now=now
        )
    return len(sample) / (time.perf_counter() - started)


def mb(peaks: dict[str, float | None]) -> str:
    return ", ".join(f"{name} {value:,.0f} MB" for name, value in peaks.items() if value)


async def bench(args: argparse.Namespace) -> int:
    layouts = args.layout or list(LAYOUTS)
    backlog_records = generate(args.records, seed=args.seed)
    offered_records = generate(int(args.rate * args.seconds) + 1000, seed=args.seed + 1)
    print(
        f"embedded pipeline, {datetime.now(UTC):%Y-%m-%d}, SQLite log + SQLite store; {machine()}"
    )
    failed = False
    with tempfile.TemporaryDirectory(prefix="aoc-bench-pipeline-") as scratch:
        workdir = Path(scratch)
        print(
            f"floors: embedded log insert {await log_floor(backlog_records, workdir):,.0f} records/s; "
            f"normalizer core {core_floor(backlog_records):,.0f} events/s on one core"
        )
        print(f"\nbacklog of {len(backlog_records.messages):,} raw records:")
        print(
            "| layout | normalizer records/s | store events/s | all searchable after | peak memory |"
        )
        print("|---|---:|---:|---:|---|")
        for layout in layouts:
            found = await backlog(layout, backlog_records, workdir)
            print(
                f"| {layout} | {found.normalizer_rate:,.0f} | {found.store_rate:,.0f} | "
                f"{found.end_to_end_s:.1f} s | {mb(found.peak_mb)} |"
            )
        print(f"\noffered {args.rate:,} records/s for {args.seconds:.0f} s:")
        print("| layout | ingest→searchable p50 | p99 | median per tenth of the run | unfinished |")
        print("|---|---:|---:|---|---:|")
        runs: list[Offered] = []
        for layout in layouts:
            run = await offered(layout, offered_records, args.rate, args.seconds, workdir)
            tenths = " ".join(f"{v * 1000:.0f}" for v in run.per_tenth_s)
            print(
                f"| {layout} | {run.percentile(0.5) * 1000:,.0f} ms | "
                f"{run.percentile(0.99) * 1000:,.0f} ms | {tenths} ms | {run.unfinished} ticks |"
            )
            failed |= run.unfinished > 0 and layout == "processes"
            runs.append(run)
        print("\nwhere the time went (ms; medians per tenth of the run):")
        print("| layout | stage | p50 | p99 | median per tenth |")
        print("|---|---|---:|---:|---|")
        for run in runs:
            if run.stages is None:
                continue
            for stage, values in (
                ("normalizer: publish → on aoc.events", run.stages.normalizer_s),
                ("store: on aoc.events → searchable", run.stages.store_s),
                ("publisher behind schedule", run.stages.late_s),
                ("watcher's count of stored events", run.stages.count_s),
            ):
                print(
                    f"| {run.layout} | {stage} | {percentile(values, 0.5) * 1000:,.0f} | "
                    f"{percentile(values, 0.99) * 1000:,.0f} | "
                    + " ".join(f"{v * 1000:.0f}" for v in per_tenth(values))
                    + " |"
                )
            for stage, sizes in (
                ("log WAL, largest MB", run.stages.log_wal_mb),
                ("store WAL, largest MB", run.stages.store_wal_mb),
            ):
                print(
                    f"| {run.layout} | {stage} | | {max(sizes):,.0f} | "
                    + " ".join(f"{v:.0f}" for v in sizes)
                    + " |"
                )
            print(
                f"| {run.layout} | CPU µs per record offered | | | "
                + ", ".join(f"{name} {us:,.0f}" for name, us in run.stages.cpu_us_per_event.items())
                + " |"
            )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="backlog size")
    parser.add_argument("--rate", type=int, default=5000, help="offered records per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the rate is offered")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--layout", action="append", choices=LAYOUTS)
    parser.add_argument("--one-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one_process:
        asyncio.run(run_one_process())
        return 0
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
