"""The embedded event store: SQLite (WAL) with an FTS5 index, for one machine and no servers.

This is a real, durable engine, not a test double: `aoc demo` and a single-machine `aoc run` keep
their events here across restarts, and several processes may open the same file (the store sink
writing, the API reading and tagging): WAL lets readers run beside the one writer, every write is
one `BEGIN IMMEDIATE` transaction, and a busy writer is waited for up to `busy_timeout`.

Within a process no SQLite call ever runs on the event loop: every statement goes through one
dedicated worker thread, which also serializes access to the single connection. The table layout
and why it looks the way it does: `sqlite_schema.py`; reads: `sqlite_query.py`; writes:
`sqlite_writes.py`.

Search terms are indexed with FTS5's `ascii` tokenizer on purpose. The indexed text is already
lowercase letter/digit runs (`event_search_text`) separated by spaces; `ascii` splits only on
ASCII punctuation and spaces and folds only ASCII case, so FTS5 indexes exactly those terms.
`unicode61` would fold and split some of them again by its own Unicode 6.1 rules (`ſ` becomes `s`,
final `ς` becomes `σ`, letters newer than Unicode 6.1 become separators), and the two stores would
then disagree on which events a search finds.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import orjson

from aoc_common.event_store import sqlite_query, sqlite_writes
from aoc_common.event_store.base import (
    EventStore,
    PreparedUpsert,
    StoreError,
    dedupe_last_wins,
)
from aoc_common.event_store.encoded import EncodedEvent
from aoc_common.event_store.sqlite_schema import (
    prepare,
    schema_is_current,
    seqs_with_id,
    transaction,
)
from aoc_common.event_store.sqlite_word_cache import WordCache
from aoc_common.events import CanonicalEvent, Comment, to_utc_millis, utc_now
from aoc_common.query import (
    DEFAULT_COUNT_LIMIT,
    DEFAULT_FACET_SAMPLE,
    FACET_FIELDS,
    FACET_FILTERS,
    EventFilters,
    EventPage,
    EventQuery,
    FacetCounts,
    FilterOptions,
    MatchCount,
    UpsertResult,
    check_count_limit,
    check_facet_request,
    page_from,
    timestamp_ms,
)
from aoc_common.rules import (
    Alert,
    AlertCount,
    AlertPage,
    AlertQuery,
    Rule,
    alert_page_from,
    sorted_alert_counts,
)

T = TypeVar("T")


class StoreConnection(sqlite3.Connection):
    """The store's connection, with what its reads keep about search words between answers
    (`sqlite_word_cache`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.word_cache = WordCache()


# Keys looked up per statement, well under SQLite's bound-parameter limit.
LOOKUP_CHUNK = 500
# Pages SQLite keeps in memory per connection (negative: KiB), allocated only as pages are read:
# what a connection changes and what it reads beyond the mapped part of the file. The default 2 MB
# makes every index insert a disk read once the store outgrows it.
CACHE_KIB = 65_536
# Reads go through a memory map of the file (up to 2 GiB, SQLite's usual build limit): at 1M events a
# facet over a 0.7 % operation reads a row on most of the 4,800 pages of `events`, which a 64 MB cache
# re-read from the OS on every call (bench/api.py: 78 ms vs 17 ms mapped, same run). Mapped pages are
# the OS's page cache, shared by every process using the file and given back under memory pressure;
# a 512 MB private cache per connection answered as fast but kept that memory in each process (API,
# sink, alerter). The cost: a disk read error in a mapped page ends the process (SIGBUS) instead of
# raising — a failing disk, where the service restarts and re-reads from its committed offset.
MMAP_BYTES = 2 * 1024**3
PAGE_SIZE = 32_768


class SqliteEventStore(EventStore):
    """Events in one SQLite file: a narrow indexed row per event, its JSON beside it."""

    engine = "embedded"

    def __init__(self, path: Path, *, retention_days: int = 90) -> None:
        self.path = Path(path)
        self.retention_days = retention_days
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None
        self._writer = sqlite_writes.WriterState()
        # Opened on a read-only file: reads are served, writes fail (retention is not applied).
        self.read_only = False

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open (or create) the database, create or upgrade the schema, then apply retention
        (unless the file is read-only: see `read_only`)."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aoc-event-store")
        try:
            await self._call(self._open)
        except BaseException:
            await self.stop()
            raise
        if not self.read_only:
            await self.purge_expired()

    async def stop(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close)
        finally:
            # The close above ran after every statement queued before it; do not block the loop.
            executor.shutdown(wait=False)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are explicit (`transaction`), never implicit.
        connection = sqlite3.connect(self.path, isolation_level=None, factory=StoreConnection)
        try:
            connection.execute("PRAGMA busy_timeout = 5000")
            # Only a new, empty file takes it (before WAL and the first table). Large pages hold
            # several event documents each and make appends cheap: 32 KiB stored events 25 %
            # faster and 25 % smaller than 4 KiB in bench/store_sink.py.
            connection.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            connection.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed batch survives a power cut; the sink commits its offsets after it.
            connection.execute("PRAGMA synchronous = FULL")
            connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            connection.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
            # Debian builds SQLite with secure_delete on, which zeroes every freed byte on disk
            # (FTS5 frees pages at every merge). FAST still zeroes what it can without extra I/O.
            connection.execute("PRAGMA secure_delete = FAST")
            # The upserts' key map (sqlite_writes.KeyMap) is a TEMP table: memory, never a file.
            connection.execute("PRAGMA temp_store = MEMORY")
            try:
                prepare(connection)
            except sqlite3.OperationalError as error:
                # A read-only file that already holds this schema (a snapshot, a read-only
                # volume) still serves reads; every write then fails and says so.
                if "readonly" not in str(error) or not schema_is_current(connection):
                    raise
                self.read_only = True
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        self._writer = sqlite_writes.WriterState()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with suppress(sqlite3.Error):
                # Keeps the query planner's statistics fresh; a failure here loses nothing.
                connection.execute("PRAGMA optimize")
            connection.close()

    async def ping(self) -> None:
        await self._run(lambda connection: connection.execute("SELECT 1").fetchone())

    async def _call(self, work: Callable[[], T]) -> T:
        """Run `work` on the store's own thread; SQLite and file errors become StoreError."""
        if self._executor is None:
            raise StoreError("the embedded event store is not started")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work)
        except (sqlite3.Error, OSError) as error:
            # OSError: the file or its directory cannot be created or opened.
            raise StoreError(f"sqlite event store at {self.path}: {error}") from error

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(connection)` on the store's own thread."""

        def with_connection() -> T:
            if self._connection is None:
                raise StoreError("the embedded event store is not started")
            return work(self._connection)

        return await self._call(with_connection)

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in one read transaction: the statements of one answer (a count and the
        sample it decides on) see one snapshot even while another process writes."""

        def snapshot(connection: sqlite3.Connection) -> T:
            connection.execute("BEGIN")
            try:
                return work(connection)
            finally:
                connection.execute("COMMIT")

        return await self._run(snapshot)

    # --- events ----------------------------------------------------------------------------------

    async def upsert_events(self, events: Sequence[CanonicalEvent]) -> UpsertResult:
        return await self.upsert_encoded([EncodedEvent.of(event) for event in events])

    async def upsert_encoded(self, events: Sequence[EncodedEvent]) -> UpsertResult:
        return await self.upsert_prepared(self.prepare_upsert(events))

    def prepare_upsert(self, events: Sequence[EncodedEvent]) -> sqlite_writes.PreparedBatch:
        """Rows, words and key hashes as JSON and blobs, computed on the caller's thread (see
        sqlite_writes.py): the store's thread then runs a few statements that hold no GIL."""
        return sqlite_writes.prepare_batch(dedupe_last_wins(events))

    async def upsert_prepared(self, prepared: PreparedUpsert) -> UpsertResult:
        if not prepared.events:
            return UpsertResult()
        batch = (
            prepared
            if isinstance(prepared, sqlite_writes.PreparedBatch)
            else sqlite_writes.prepare_batch(prepared.events)
        )
        return await self._run(
            lambda connection: sqlite_writes.upsert(connection, batch, self._writer)
        )

    async def query_events(self, query: EventQuery) -> EventPage:
        if query.matches_nothing:
            return EventPage(items=[])
        docs = await self._read(
            lambda connection: sqlite_query.page_docs(
                connection, query, query.cursor, query.order, query.page_size + 1
            )
        )
        events = [CanonicalEvent.model_validate_json(doc) for doc in docs]
        return page_from(events, query.page_size, query.order)

    async def get_event(self, event_id: str) -> CanonicalEvent | None:
        def lookup(connection: sqlite3.Connection) -> list[str]:
            return sqlite_query.docs_of(connection, seqs_with_id(connection, event_id))

        docs = await self._read(lookup)
        return CanonicalEvent.model_validate_json(docs[0]) if docs else None

    async def count_events(self) -> int:
        row = await self._run(
            lambda connection: connection.execute("SELECT count(*) FROM events").fetchone()
        )
        return int(row[0])

    async def count_matching(
        self, filters: EventFilters, limit: int = DEFAULT_COUNT_LIMIT
    ) -> MatchCount:
        check_count_limit(limit)
        if filters.matches_nothing:
            return MatchCount(value=0, exact=True)
        return await self._read(
            lambda connection: sqlite_query.count_matching(connection, filters, limit)
        )

    async def facet_counts(
        self,
        filters: EventFilters,
        fields: Sequence[str] = FACET_FIELDS,
        top: int = 10,
        sample: int | None = DEFAULT_FACET_SAMPLE,
    ) -> FacetCounts:
        check_facet_request(fields, top, sample)
        wanted = list(dict.fromkeys(fields))
        if filters.matches_nothing:
            return FacetCounts(facets={field: [] for field in wanted}, counted=0, complete=True)
        return await self._read(
            lambda connection: sqlite_query.facet_counts(connection, filters, wanted, top, sample)
        )

    async def filter_options(self) -> FilterOptions:
        return await self._read(sqlite_query.filter_options)

    async def count_by_interval(
        self, filters: EventFilters, start: datetime, interval_ms: int, buckets: int
    ) -> list[int]:
        if filters.matches_nothing or buckets < 1 or interval_ms < 1:
            return [0] * max(buckets, 0)
        return await self._read(
            lambda connection: sqlite_query.count_by_interval(
                connection, filters, start, interval_ms, buckets
            )
        )

    async def count_by_interval_split(
        self,
        filters: EventFilters,
        start: datetime,
        interval_ms: int,
        buckets: int,
        field: str,
        values: Sequence[str],
    ) -> tuple[list[int], list[list[int]]]:
        if filters.matches_nothing or buckets < 1 or interval_ms < 1:
            return [0] * max(buckets, 0), [[0] * max(buckets, 0) for _ in values]
        column = FACET_FILTERS[field][0]
        return await self._read(
            lambda connection: sqlite_query.count_by_interval_split(
                connection, filters, start, interval_ms, buckets, column, values
            )
        )

    async def set_tags(self, event_id: str, tags: Sequence[str]) -> CanonicalEvent | None:
        unique_tags = list(dict.fromkeys(tags))

        def change(doc: dict[str, Any]) -> None:
            doc["tags"] = unique_tags

        encoded = await self._run(
            lambda connection: sqlite_writes.change_event(
                connection, event_id, change, tags=unique_tags
            )
        )
        return None if encoded is None else CanonicalEvent.model_validate_json(encoded)

    async def add_comment(self, event_id: str, comment: Comment) -> CanonicalEvent | None:
        def change(doc: dict[str, Any]) -> None:
            doc.setdefault("comments", []).append(comment.model_dump(mode="json"))

        encoded = await self._run(
            lambda connection: sqlite_writes.change_event(connection, event_id, change)
        )
        return None if encoded is None else CanonicalEvent.model_validate_json(encoded)

    async def purge_expired(self, now: datetime | None = None) -> int:
        """Delete events ingested before now - retention_days, a batch per transaction."""
        cutoff = timestamp_ms((now or utc_now()) - timedelta(days=self.retention_days))
        purged, after = 0, 0
        while True:
            deleted, after = await self._run(
                partial(sqlite_writes.purge_batch, cutoff_ms=cutoff, after_seq=after)
            )
            purged += deleted
            if after == 0:
                return purged

    # --- state -----------------------------------------------------------------------------------

    async def get_state(self, key: str) -> dict[str, Any] | None:
        row = await self._run(
            lambda connection: connection.execute(
                "SELECT value FROM state WHERE key = ?", (key,)
            ).fetchone()
        )
        if row is None:
            return None
        value: dict[str, Any] = orjson.loads(row[0])
        return value

    async def put_state(self, key: str, value: dict[str, Any]) -> None:
        encoded = orjson.dumps(value).decode()
        await self._run(
            lambda connection: connection.execute(
                "INSERT INTO state (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, encoded),
            )
        )

    # --- rules and alerts ------------------------------------------------------------------------

    async def list_rules(self) -> list[Rule]:
        rows = await self._run(
            lambda connection: connection.execute(
                "SELECT doc FROM rules ORDER BY name, id"
            ).fetchall()
        )
        return [Rule.model_validate_json(doc) for (doc,) in rows]

    async def get_rule(self, rule_id: str) -> Rule | None:
        row = await self._run(
            lambda connection: connection.execute(
                "SELECT doc FROM rules WHERE id = ?", (rule_id,)
            ).fetchone()
        )
        return None if row is None else Rule.model_validate_json(row[0])

    async def put_rule(self, rule: Rule) -> None:
        encoded = rule.model_dump_json()
        await self._run(
            lambda connection: connection.execute(
                "INSERT INTO rules (id, name, doc) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET name = excluded.name, doc = excluded.doc",
                (rule.id, rule.name, encoded),
            )
        )

    async def delete_rule(self, rule_id: str) -> bool:
        cursor = await self._run(
            lambda connection: connection.execute("DELETE FROM rules WHERE id = ?", (rule_id,))
        )
        return bool(cursor.rowcount)

    async def insert_alerts(self, alerts: Sequence[Alert]) -> list[str]:
        if not alerts:
            return []
        return await self._run(lambda connection: _insert_alerts(connection, alerts))

    async def existing_alert_ids(self, alert_ids: Sequence[str]) -> set[str]:
        ids = list(dict.fromkeys(alert_ids))

        def lookup(connection: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for start in range(0, len(ids), LOOKUP_CHUNK):
                chunk = ids[start : start + LOOKUP_CHUNK]
                marks = ", ".join("?" * len(chunk))
                sql = f"SELECT id FROM alerts WHERE id IN ({marks})"
                found.update(alert_id for (alert_id,) in connection.execute(sql, chunk))
            return found

        return await self._run(lookup)

    async def query_alerts(self, query: AlertQuery) -> AlertPage:
        clauses: list[str] = []
        params: list[Any] = []
        for column in ("status", "severity", "rule_id"):
            value = getattr(query, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if query.cursor is not None:
            clauses.append("(created_at_ms, id) < (?, ?)")
            params.extend([query.cursor.timestamp_ms, query.cursor.id])
        where = " AND ".join(clauses) or "1"
        sql = f"SELECT doc FROM alerts WHERE {where} ORDER BY created_at_ms DESC, id DESC LIMIT ?"
        params.append(query.page_size + 1)
        rows = await self._run(lambda connection: connection.execute(sql, params).fetchall())
        return alert_page_from([Alert.model_validate_json(doc) for (doc,) in rows], query.page_size)

    async def get_alert(self, alert_id: str) -> Alert | None:
        row = await self._run(
            lambda connection: connection.execute(
                "SELECT doc FROM alerts WHERE id = ?", (alert_id,)
            ).fetchone()
        )
        return None if row is None else Alert.model_validate_json(row[0])

    async def acknowledge_alert(self, alert_id: str, by: str, at: datetime) -> Alert | None:
        return await self._run(lambda connection: _acknowledge(connection, alert_id, by, at))

    async def alert_counts(self) -> list[AlertCount]:
        sql = (
            "SELECT rule_id, json_extract(doc, '$.rule_name') AS rule_name, severity, status, "
            "COUNT(*) FROM alerts GROUP BY rule_id, rule_name, severity, status"
        )
        rows = await self._run(lambda connection: connection.execute(sql).fetchall())
        return sorted_alert_counts(
            AlertCount(rule_id=r[0], rule_name=r[1], severity=r[2], status=r[3], count=r[4])
            for r in rows
        )


# --- work done on the store's thread ------------------------------------------------------------


def _insert_alerts(connection: sqlite3.Connection, alerts: Sequence[Alert]) -> list[str]:
    """INSERT OR IGNORE on the primary key: an alert id already stored is left exactly as it is."""
    inserted: list[str] = []
    with transaction(connection):
        for alert in alerts:
            cursor = connection.execute(
                "INSERT OR IGNORE INTO alerts (id, created_at_ms, status, severity, rule_id, doc) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    alert.id,
                    timestamp_ms(alert.created_at),
                    alert.status,
                    alert.severity,
                    alert.rule_id,
                    alert.model_dump_json(),
                ),
            )
            if cursor.rowcount:
                inserted.append(alert.id)
    return inserted


def _acknowledge(
    connection: sqlite3.Connection, alert_id: str, by: str, at: datetime
) -> Alert | None:
    with transaction(connection):
        row = connection.execute("SELECT doc FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        if row is None:
            return None
        alert = Alert.model_validate_json(row[0])
        if alert.status == "acknowledged":
            return alert
        alert = alert.model_copy(
            update={
                "status": "acknowledged",
                "acknowledged_by": by,
                "acknowledged_at": to_utc_millis(at),
            }
        )
        connection.execute(
            "UPDATE alerts SET status = ?, doc = ? WHERE id = ?",
            (alert.status, alert.model_dump_json(), alert_id),
        )
    return alert
