"""Latency of the event API (pages, counts, facets, the histogram) over real HTTP on loopback,
against a large store.

    python bench/api.py                       # 1,000,000 synthetic events in the embedded SQLite store
    python bench/api.py --events 200000       # a smaller store
    python bench/api.py --mongo 20000         # also: MongoDB protocol (SecantusDB in-process), 20k events
    python bench/api.py --only count,facets   # only the scenarios whose name has one of these words
    python bench/api.py --only word --first-ask   # every request is its words' first ask
    python bench/api.py --only word --ingest 500 --runs 30   # 500 events added before each request

Count and facet scenarios call `GET /api/events/count` and `/api/events/facets`; where the API
under test has no such route (or no `order` parameter), the scenario times the store's own
`count_matching` / `facet_counts` / `query_events` call instead and says so ("store" in the last
column): the goal (p95 < 50 ms on 1M events in SQLite) is about the store's answer either way.

Events are the fixture events (normalized by the real core) cloned with new ids, timestamps spread over
90 days, 2,000 actors and a few rare words, so filters and searches have realistic selectivity. The
SQLite file is kept under .aoc-data/bench-api/ and reused by the next run with the same size. Each
scenario runs sequential requests (a new loopback connection each) and prints p50/p95/max in ms.

The embedded store keeps what it learnt of search words between answers (`sqlite_word_cache`), so a
scenario repeating one search measures the answers after the first. `--first-ask` empties that
cache before every request (untimed): each answer then reads its words as a new search does.
`--ingest N` runs on a copy of the store file (deleted afterwards: removing the added events would
leave FTS5 tombstones that slow later runs), where a second store (a sink) adds N new events before
every request (untimed), so each answer first folds in the events added since the last.
SecantusDB is a test engine (about 3 ms per write, a young query planner): its figures say nothing of
MongoDB's; the goal p95 < 50 ms on MongoDB needs a real mongod (AOC_BENCH_MONGO_URI=mongodb://...).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aoc_api.app import create_app  # noqa: E402
from aoc_common.event_store.base import EventStore  # noqa: E402
from aoc_common.event_store.mongo import MongoEventStore  # noqa: E402
from aoc_common.event_store.sqlite import SqliteEventStore  # noqa: E402
from aoc_common.query import DEFAULT_FACET_SAMPLE, EventFilters, EventQuery  # noqa: E402
from aoc_common.settings import Settings  # noqa: E402
from bench.corpus import synthetic_events  # noqa: E402

BATCH = 5_000
# A slow scenario stops after this long once it has MIN_RUNS timings (its row says how many).
SCENARIO_SECONDS = 30
MIN_RUNS = 20


async def fill(store: EventStore, count: int) -> None:
    existing = await store.count_events()
    if existing == count:
        print(f"  reusing {existing:,} stored events")
        return
    if existing:
        raise SystemExit(f"the bench store holds {existing:,} events, not {count:,}: delete it")
    started = time.perf_counter()
    done = 0
    for batch in synthetic_events(count, batch_size=BATCH):
        await store.upsert_events(batch)
        done += len(batch)
        if done % 100_000 == 0 or done == count:
            rate = done / (time.perf_counter() - started)
            print(f"  stored {done:,} events ({rate:,.0f}/s)", flush=True)


Scenario = tuple[str, str, dict[str, Any]]
WEEK_START = "2026-11-13T00:00:00Z"


def scenarios(actor: str) -> list[Scenario]:
    return [
        ("newest page, no filter", "/api/events", {}),
        ("page 20 (cursor), no filter", "cursor", {}),
        ("oldest page, no filter", "/api/events", {"order": "oldest"}),
        ("service=Exchange", "/api/events", {"service": "Exchange"}),
        ("service + result=failure", "/api/events", {"service": "Entra ID", "result": "failure"}),
        ("source=intune + 7-day range", "/api/events", {"source": "intune", "start": WEEK_START}),
        ("uncommon operation (0.7 %)", "/api/events", {"operation": "Action ManagedDevice"}),
        ("exclude_service=Exchange", "/api/events", {"exclude_service": "Exchange"}),
        ("actor contains (one actor)", "/api/events", {"actor": actor}),
        ("actor contains (every actor)", "/api/events", {"actor": "contoso"}),
        ("tags=reviewed", "/api/events", {"tags": "reviewed"}),
        ("search common word", "/api/events", {"search": "mailbox"}),
        ("search rare word", "/api/events", {"search": "breakglass"}),
        # In 99.6 % of events (every actor's address), and a prefix starting 2,000+ terms (user0000
        # to user1999, userid, usertype, ...): the words an analyst types that find nearly all.
        ("search very common word", "/api/events", {"search": "contoso"}),
        ("search prefix of 2,000+ terms", "/api/events", {"search": "user"}),
        (
            "search two words + service",
            "/api/events",
            {"search": "reset password", "service": "Entra ID"},
        ),
        ("search prefix", "/api/events", {"search": "forw"}),
        ("page_size=500, no filter", "/api/events", {"page_size": 500}),
        ("histogram, default week", "/api/events/histogram", {}),
        # The overview's stacked chart: every event's interval counts per service (5 values).
        ("overview chart by service, all time", "/api/events/series", {}),
        (
            "histogram, 7 days, common word",
            "/api/events/histogram",
            {"search": "mailbox", "start": WEEK_START},
        ),
        (
            "histogram, 7 days, very common word",
            "/api/events/histogram",
            {"search": "contoso", "start": WEEK_START},
        ),
        ("histogram, common word (90 days)", "/api/events/histogram", {"search": "mailbox"}),
        ("histogram, very common word (90 days)", "/api/events/histogram", {"search": "contoso"}),
        (
            "histogram, 7 days, prefix of 2,000+ terms",
            "/api/events/histogram",
            {"search": "user", "start": WEEK_START},
        ),
        (
            "histogram, 90 days + service",
            "/api/events/histogram",
            {"service": "Exchange", "start": "2026-08-22T00:00:00Z", "end": "2026-11-20T00:00:00Z"},
        ),
        ("count, no filter", "/api/events/count", {}),
        ("count, service=Exchange", "/api/events/count", {"service": "Exchange"}),
        (
            "count, failures in 7 days",
            "/api/events/count",
            {"result": "failure", "start": WEEK_START},
        ),
        ("count, uncommon operation", "/api/events/count", {"operation": "Action ManagedDevice"}),
        ("count, search common word", "/api/events/count", {"search": "mailbox"}),
        ("count, search rare word", "/api/events/count", {"search": "breakglass"}),
        ("count, search very common word", "/api/events/count", {"search": "contoso"}),
        ("count, search prefix of 2,000+ terms", "/api/events/count", {"search": "user"}),
        ("count, actor contains (one)", "/api/events/count", {"actor": actor}),
        ("count, exclude_service", "/api/events/count", {"exclude_service": "Exchange"}),
        ("facets, no filter", "/api/events/facets", {}),
        ("facets, service=Exchange", "/api/events/facets", {"service": "Exchange"}),
        (
            "facets, failures in 7 days",
            "/api/events/facets",
            {"result": "failure", "start": WEEK_START},
        ),
        ("facets, uncommon operation", "/api/events/facets", {"operation": "Action ManagedDevice"}),
        # Just too common to be read whole through the search index (13,339 events): the newest
        # matches are the furthest apart in the time index.
        ("facets, operation in 1.3 %", "/api/events/facets", {"operation": "Delete ManagedDevice"}),
        ("facets, search common word", "/api/events/facets", {"search": "mailbox"}),
        (
            "facets, common word, sample 10,000",
            "/api/events/facets",
            {"search": "mailbox", "sample": 10_000},
        ),
        (
            "facets, operation 1.3 %, sample 10,000",
            "/api/events/facets",
            {"operation": "Delete ManagedDevice", "sample": 10_000},
        ),
        ("facets, search rare word", "/api/events/facets", {"search": "breakglass"}),
        ("facets, search word in 20 %", "/api/events/facets", {"search": "update"}),
        ("facets, search very common word", "/api/events/facets", {"search": "contoso"}),
        ("facets, search prefix of 2,000+ terms", "/api/events/facets", {"search": "user"}),
        ("facets, actor contains (one)", "/api/events/facets", {"actor": actor}),
        ("facets, exclude_service", "/api/events/facets", {"exclude_service": "Exchange"}),
        # What the events view asks for a search, at once: the page, count, facets and histogram.
        ("events view, search common word", VIEW, {"search": "mailbox"}),
        ("events view, search very common word", VIEW, {"search": "contoso"}),
        ("events view, search prefix of 2,000+ terms", VIEW, {"search": "user"}),
    ]


VIEW = "view"
VIEW_PATHS = ("/api/events", "/api/events/count", "/api/events/facets", "/api/events/histogram")


async def get(client: httpx.AsyncClient, path: str, params: dict[str, Any]) -> httpx.Response:
    """One request, or for VIEW the events view's four fired at once (the first failing one, or
    the count's answer)."""
    if path != VIEW:
        return await client.get(path, params=params)
    answers = await asyncio.gather(*(client.get(each, params=params) for each in VIEW_PATHS))
    return next((answer for answer in answers if answer.status_code != 200), answers[1])


async def store_call(store: EventStore, path: str, params: dict[str, Any]) -> int:
    """What the scenario asks, straight from the store; returns how many items it answered."""
    if path == "/api/events/count":
        return (await store.count_matching(EventFilters.model_validate(params))).value
    if path == "/api/events/facets":
        filters = {name: value for name, value in params.items() if name != "sample"}
        facets = await store.facet_counts(
            EventFilters.model_validate(filters), sample=params.get("sample", DEFAULT_FACET_SAMPLE)
        )
        return facets.counted
    return len((await store.query_events(EventQuery.model_validate(params))).items)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


Before = Callable[[], Awaitable[None]]


async def nothing_before() -> None:
    return None


async def measure(
    client: httpx.AsyncClient,
    path: str,
    params: dict[str, Any],
    runs: int,
    before: Before = nothing_before,
) -> list[float]:
    cursor: str | None = None
    if path == "cursor":  # the 20th page: follow 19 cursors first
        path = "/api/events"
        for _ in range(19):
            page = (
                await client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
            ).json()
            cursor = page["next_cursor"]
        params = {**params, "cursor": cursor}
    timings: list[float] = []
    deadline = time.monotonic() + SCENARIO_SECONDS
    for attempt in range(runs + 5):
        await before()
        started = time.perf_counter()
        response = await get(client, path, params)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"{path} {params}: HTTP {response.status_code} {response.text[:200]}")
        if attempt >= 5:  # warm-up excluded
            timings.append(elapsed)
        if len(timings) >= MIN_RUNS and time.monotonic() > deadline:
            break
    return timings


async def measure_store(
    store: EventStore,
    path: str,
    params: dict[str, Any],
    runs: int,
    before: Before = nothing_before,
) -> list[float]:
    timings: list[float] = []
    deadline = time.monotonic() + SCENARIO_SECONDS
    for attempt in range(runs + 5):
        await before()
        started = time.perf_counter()
        await store_call(store, path, params)
        if attempt >= 5:
            timings.append((time.perf_counter() - started) * 1000)
        if len(timings) >= MIN_RUNS and time.monotonic() > deadline:
            break
    return timings


async def served(client: httpx.AsyncClient, path: str, params: dict[str, Any]) -> bool:
    """Whether the API under test answers this scenario itself (a route, its parameters)."""
    if path == "cursor":
        return True
    return (await get(client, path, params)).status_code == 200


def items_in(answer: dict[str, Any]) -> int:
    for key in ("items", "buckets"):
        if key in answer:
            return len(answer[key])
    if "counted" in answer:
        return int(answer["counted"])
    return int(answer.get("value", 0))


def forgetting_words(store: EventStore) -> Before:
    """Empties the embedded store's word cache (on the store's thread, as its reads run)."""

    async def forget() -> None:
        if isinstance(store, SqliteEventStore):
            await store._run(lambda connection: connection.word_cache.clear())

    return forget


def ingesting(writer: EventStore, batch: int) -> Before:
    """Adds `batch` new events through `writer`."""
    batches = synthetic_events(10**12, batch_size=batch, seed=time.time_ns())

    async def add() -> None:
        await writer.upsert_events(next(batches))

    return add


async def bench_store(
    label: str,
    store: EventStore,
    count: int,
    runs: int,
    tmp: Path,
    only: list[str],
    *,
    first_ask: bool = False,
    ingest: int = 0,
) -> None:
    print(f"\n{label}: {count:,} events")
    await store.start()
    writer = None
    try:
        await fill(store, count)
        before = forgetting_words(store) if first_ask else nothing_before
        if ingest and isinstance(store, SqliteEventStore):
            writer = SqliteEventStore(store.path, retention_days=store.retention_days)
            await writer.start()
            before = ingesting(writer, ingest)
        app = create_app(Settings(data_dir=tmp), store=store, message_log=None)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        )
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:  # noqa: ASYNC110 - polling uvicorn's own flag
            await asyncio.sleep(0.01)
        # A new connection per request: on a kept-alive connection httpx and uvicorn stall ~40 ms
        # per small response on loopback (curl does not), which would measure that, not AOC.
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=60,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as client:
            sample = (await client.get("/api/events", params={"page_size": 1})).json()["items"][0]
            actor = sample["actor_display"][:8]
            print(f"  {'scenario':<42} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  items  via  runs")
            for name, path, params in scenarios(actor):
                if only and not any(word in name for word in only):
                    continue
                if await served(client, path, params):
                    timings = await measure(client, path, params, runs, before)
                    target = path if path != "cursor" else "/api/events"
                    shown, via = items_in((await get(client, target, params)).json()), "http"
                else:
                    timings = await measure_store(store, path, params, runs, before)
                    shown, via = await store_call(store, path, params), "store"
                print(
                    f"  {name:<42} {statistics.median(timings):8.1f} "
                    f"{percentile(timings, 0.95):8.1f} {max(timings):8.1f}  {shown:>5}  {via}"
                    f"  {len(timings):>4}",
                    flush=True,
                )
        server.should_exit = True
        await serving
    finally:
        if writer is not None:
            await writer.stop()
        await store.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the SQLite store")
    parser.add_argument("--runs", type=int, default=100, help="requests per scenario")
    parser.add_argument(
        "--mongo", type=int, default=0, help="also bench the Mongo store with N events"
    )
    parser.add_argument("--data", type=Path, default=REPO / ".aoc-data" / "bench-api")
    parser.add_argument("--only", default="", help="comma-separated words of scenario names")
    parser.add_argument(
        "--first-ask", action="store_true", help="empty the word cache before every request"
    )
    parser.add_argument(
        "--ingest", type=int, default=0, help="add N events to the store before every request"
    )
    args = parser.parse_args()
    only = [word for word in args.only.split(",") if word]
    args.data.mkdir(parents=True, exist_ok=True)
    sqlite_path = args.data / f"events-{args.events}.sqlite3"
    copy = None
    if args.ingest:
        filled = SqliteEventStore(sqlite_path, retention_days=3650)
        await filled.start()
        await fill(filled, args.events)
        await filled.stop()
        copy = args.data / f"ingest-copy-{args.events}.sqlite3"
        shutil.copyfile(sqlite_path, copy)
    try:
        await bench_store(
            "embedded SQLite store" + (" (a copy, taking new events)" if copy else ""),
            SqliteEventStore(copy or sqlite_path, retention_days=3650),
            args.events,
            args.runs,
            args.data,
            only,
            first_ask=args.first_ask,
            ingest=args.ingest,
        )
    finally:
        if copy is not None:
            for leftover in (copy, Path(f"{copy}-wal"), Path(f"{copy}-shm")):
                leftover.unlink(missing_ok=True)
    if args.mongo:
        uri = os.environ.get("AOC_BENCH_MONGO_URI")
        server = None
        if not uri:
            from secantus import SecantusDBServer

            server = SecantusDBServer(storage_path=":memory:", host="127.0.0.1", port=0)
            server.start()
            uri = f"mongodb://127.0.0.1:{server.port}"
        db_name = f"aoc_bench_{uuid.uuid4().hex[:8]}"
        try:
            label = "MongoDB store on " + (
                "SecantusDB (test engine)" if server else uri.split("@")[-1]
            )
            await bench_store(
                label,
                MongoEventStore(uri, db_name, retention_days=3650),
                args.mongo,
                args.runs,
                args.data,
                only,
            )
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    asyncio.run(main())
