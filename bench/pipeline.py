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
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from engines import machine, peak_rss_mb, stop
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

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies_s)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


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
        seen: set[bytes] = set()
        watcher = asyncio.create_task(watch(store, published_at, result, seconds))
        begin = time.monotonic()
        for tick in range(ticks):
            due = begin + tick * TICK_S
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            chunk = messages[tick * per_tick : (tick + 1) * per_tick]
            by_topic: dict[str, list[Message]] = {}
            for topic, message in chunk:
                by_topic.setdefault(topic, []).append(message)
                seen.add(message.key or b"")
            for topic, batch in by_topic.items():
                await message_log.publish(topic, batch)
            published_at.append((len(seen), time.monotonic()))
        await watcher
    finally:
        result.peak_mb = stop_services(services)
        await store.stop()
        await message_log.stop()
    return result


async def watch(
    store: SqliteEventStore,
    published_at: list[tuple[int, float]],
    result: Offered,
    seconds: float,
) -> None:
    """Each tick's latency: from its publish to the first poll where the store counts all of it."""
    next_tick = 0
    give_up = time.monotonic() + seconds + 60
    while time.monotonic() < give_up:
        stored = await store.count_events()
        now = time.monotonic()
        while next_tick < len(published_at) and published_at[next_tick][0] <= stored:
            result.latencies_s.append(now - published_at[next_tick][1])
            next_tick += 1
        if next_tick >= int(seconds / TICK_S):
            break
        await asyncio.sleep(POLL_S)
    result.unfinished = int(seconds / TICK_S) - next_tick
    tenth = max(1, len(result.latencies_s) // 10)
    result.per_tenth_s = [
        statistics.median(result.latencies_s[i : i + tenth])
        for i in range(0, len(result.latencies_s), tenth)
    ][:10]


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
        for layout in layouts:
            run = await offered(layout, offered_records, args.rate, args.seconds, workdir)
            tenths = " ".join(f"{v * 1000:.0f}" for v in run.per_tenth_s)
            print(
                f"| {layout} | {run.percentile(0.5) * 1000:,.0f} ms | "
                f"{run.percentile(0.99) * 1000:,.0f} ms | {tenths} ms | {run.unfinished} ticks |"
            )
            failed |= run.unfinished > 0 and layout == "processes"
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
