"""The embedded event store: SQLite (WAL) with an FTS5 index, for one machine and no servers.

This is a real, durable engine, not a test double: `aoc demo` and a single-machine `aoc run` keep
their events here across restarts. The API runs in the same process, so no SQLite call may ever run
on the event loop: every statement goes through one dedicated worker thread, which also serializes
access to the single connection.

Search terms are indexed with FTS5's `ascii` tokenizer on purpose. The terms are already
lowercase letter/digit runs (`search_terms_for`), joined by spaces; `ascii` splits only on ASCII
punctuation and spaces and folds only ASCII case, so FTS5 indexes exactly those terms. `unicode61`
would fold and split some of them again by its own Unicode 6.1 rules (`ſ` becomes `s`, final `ς`
becomes `σ`, letters newer than Unicode 6.1 become separators), and the two stores would then
disagree on which events a search finds.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson

from aoc_common.event_store.base import (
    MAX_FILTER_OPTIONS,
    EventStore,
    StoreError,
    dedupe_last_wins,
)
from aoc_common.events import CanonicalEvent, Comment, to_utc_millis, utc_now
from aoc_common.query import (
    EventPage,
    EventQuery,
    FilterOptions,
    UpsertResult,
    page_from,
    search_terms_for,
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

# Rows deleted per purge transaction: a long purge then never holds the writer (and the worker
# thread the API also waits on) for more than a moment.
PURGE_BATCH = 2_000
# Keys looked up per statement, well under SQLite's bound-parameter limit.
LOOKUP_CHUNK = 500

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    dedupe_key TEXT NOT NULL UNIQUE,
    timestamp_ms INTEGER NOT NULL,
    ingested_at_ms INTEGER NOT NULL,
    service TEXT NOT NULL,
    operation TEXT NOT NULL,
    result TEXT NOT NULL,
    source TEXT NOT NULL,
    actor_display TEXT NOT NULL,
    actor_lower TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_newest_first ON events (timestamp_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS events_service ON events (service, timestamp_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS events_operation ON events (operation, timestamp_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS events_result ON events (result, timestamp_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS events_source ON events (source, timestamp_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS events_actor ON events (actor_display);
CREATE INDEX IF NOT EXISTS events_ingested_at ON events (ingested_at_ms);
CREATE TABLE IF NOT EXISTS event_tags (
    tag TEXT NOT NULL,
    event_seq INTEGER NOT NULL,
    PRIMARY KEY (tag, event_seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS event_tags_by_event ON event_tags (event_seq);
CREATE VIRTUAL TABLE IF NOT EXISTS event_search USING fts5(
    terms, tokenize = 'ascii', detail = none
);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rules (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    created_at_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    severity TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_newest_first ON alerts (created_at_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS alerts_status ON alerts (status, created_at_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS alerts_rule ON alerts (rule_id, created_at_ms DESC, id DESC);
"""

# Every distinct actor once, so that the actor filter (a case-insensitive substring, which no
# B-tree index serves) scans thousands of actors instead of a million events, then reads the
# matching events through the `events_actor` index. Filled by upserts; an existing database is
# backfilled once when the table is created. Actors whose events were purged stay: harmless.
ACTORS_SCHEMA = """
CREATE TABLE IF NOT EXISTS event_actors (
    actor_display TEXT PRIMARY KEY,
    actor_lower TEXT NOT NULL
) WITHOUT ROWID;
"""

# Exact-match filters: EventQuery field -> column. Column names are fixed here, never user input.
EXACT_FILTERS = ("service", "operation", "result", "source")
OPTION_COLUMNS = {
    "services": "service",
    "operations": "operation",
    "results": "result",
    "sources": "source",
    "actors": "actor_display",
}


def where_clause(query: EventQuery, *, walk_newest_first: bool = False) -> tuple[str, list[Any]]:
    """The WHERE clause (with its bound parameters) for a query's filters and cursor.

    User input only ever becomes a bound parameter. The actor filter is `instr` on lowercased
    actor names (of `event_actors`), not LIKE, so `%` and `_` are plain characters; search
    tokens hold only letters and digits (see `query_tokens`), so quoting them makes each a
    literal FTS5 prefix term.

    `walk_newest_first` (see `_walks_newest_first`) writes the tag, search and actor lookups with a
    unary `+` (`+seq IN`),
    which keeps SQLite from driving the query by them: it then walks the newest-first index and
    probes each row's membership, and stops at the page's end.
    """
    member = "+seq IN" if walk_newest_first else "seq IN"
    clauses: list[str] = []
    params: list[Any] = []
    for column in EXACT_FILTERS:
        value = getattr(query, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.actor:
        clauses.append(f"{ACTOR_MEMBER[walk_newest_first]} ({ACTORS_CONTAINING})")
        params.append(query.actor.lower())
    if query.start is not None:
        clauses.append("timestamp_ms >= ?")
        params.append(timestamp_ms(query.start))
    if query.end is not None:
        clauses.append("timestamp_ms <= ?")
        params.append(timestamp_ms(query.end))
    for tag in dict.fromkeys(query.tags):
        clauses.append(f"{member} (SELECT event_seq FROM event_tags WHERE tag = ?)")
        params.append(tag)
    if query.search_tokens:
        clauses.append(f"{member} (SELECT rowid FROM event_search WHERE event_search MATCH ?)")
        params.append(fts_match(query))
    if query.cursor is not None:
        clauses.append("(timestamp_ms, id) < (?, ?)")
        params.extend([query.cursor.timestamp_ms, query.cursor.id])
    return (" AND ".join(clauses) or "1"), params


ACTORS_CONTAINING = "SELECT actor_display FROM event_actors WHERE instr(actor_lower, ?) > 0"
ACTOR_MEMBER = {False: "actor_display IN", True: "+actor_display IN"}


def fts_match(query: EventQuery) -> str:
    return " AND ".join(f'"{token}"*' for token in query.search_tokens)


# A tag or search matching more events than this is "common": a page of them is found sooner by
# walking newest-first than by collecting and sorting every match (which, for a word in a third of
# a million events, takes hundreds of milliseconds). Found by bench/api.py on 1M events.
COMMON_LOOKUP_ROWS = 2_000


def _walks_newest_first(connection: sqlite3.Connection, query: EventQuery) -> bool:
    """True when every tag, search and actor lookup of the query is common (COMMON_LOOKUP_ROWS).
    A rare one keeps the default plan: its few matches, sorted, are the fastest answer."""
    probes: list[tuple[str, Any]] = [
        ("SELECT event_seq FROM event_tags WHERE tag = ?", tag) for tag in dict.fromkeys(query.tags)
    ]
    if query.search_tokens:
        probes.append(
            ("SELECT rowid FROM event_search WHERE event_search MATCH ?", fts_match(query))
        )
    if query.actor:
        probes.append(
            (
                f"SELECT seq FROM events WHERE actor_display IN ({ACTORS_CONTAINING})",
                query.actor.lower(),
            )
        )
    if not probes:
        return False
    for lookup, value in probes:
        sql = f"SELECT count(*) FROM ({lookup} LIMIT {COMMON_LOOKUP_ROWS + 1})"
        if connection.execute(sql, (value,)).fetchone()[0] <= COMMON_LOOKUP_ROWS:
            return False
    return True


def _row_values(event: CanonicalEvent) -> tuple[Any, ...]:
    """The indexed columns of an event, in the order the INSERT and UPDATE below name them."""
    return (
        timestamp_ms(event.timestamp),
        timestamp_ms(event.ingested_at),
        event.service,
        event.operation,
        event.result,
        event.source,
        event.actor_display,
        event.actor_display.lower(),
    )


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front, so it never fails half-way."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


class SqliteEventStore(EventStore):
    """Events in one SQLite file: indexed columns for filters, the whole event as JSON in `doc`."""

    engine = "embedded"

    def __init__(self, path: Path, *, retention_days: int = 90) -> None:
        self.path = Path(path)
        self.retention_days = retention_days
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open (or create) the database, create the schema, then apply retention."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aoc-event-store")
        try:
            await self._call(self._open)
        except BaseException:
            await self.stop()
            raise
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
        # Autocommit mode: transactions are explicit (`_transaction`), never implicit.
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed batch survives a power cut; the sink commits its offsets after it.
            connection.execute("PRAGMA synchronous = FULL")
            connection.execute("PRAGMA busy_timeout = 5000")
            connection.executescript(SCHEMA)
            _create_actors_table(connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection

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

    # --- events ----------------------------------------------------------------------------------

    async def upsert_events(self, events: Sequence[CanonicalEvent]) -> UpsertResult:
        batch = dedupe_last_wins(events)
        if not batch:
            return UpsertResult()
        return await self._run(lambda connection: _upsert(connection, batch))

    async def query_events(self, query: EventQuery) -> EventPage:
        if query.matches_nothing:
            return EventPage(items=[])

        def page(connection: sqlite3.Connection) -> list[Any]:
            walk = _walks_newest_first(connection, query)
            where, params = where_clause(query, walk_newest_first=walk)
            sql = (
                f"SELECT doc FROM events WHERE {where} ORDER BY timestamp_ms DESC, id DESC LIMIT ?"
            )
            return connection.execute(sql, [*params, query.page_size + 1]).fetchall()

        rows = await self._run(page)
        events = [CanonicalEvent.model_validate_json(doc) for (doc,) in rows]
        return page_from(events, query.page_size)

    async def get_event(self, event_id: str) -> CanonicalEvent | None:
        row = await self._run(
            lambda connection: connection.execute(
                "SELECT doc FROM events WHERE id = ?", (event_id,)
            ).fetchone()
        )
        return None if row is None else CanonicalEvent.model_validate_json(row[0])

    async def count_events(self) -> int:
        row = await self._run(
            lambda connection: connection.execute("SELECT count(*) FROM events").fetchone()
        )
        return int(row[0])

    async def filter_options(self) -> FilterOptions:
        return await self._run(_filter_options)

    async def count_by_interval(
        self, query: EventQuery, start: datetime, interval_ms: int, buckets: int
    ) -> list[int]:
        counts = [0] * buckets
        if query.matches_nothing or buckets < 1 or interval_ms < 1:
            return counts
        where, params = where_clause(query.model_copy(update={"cursor": None}))
        origin = timestamp_ms(start)
        sql = (
            "SELECT (timestamp_ms - ?) / ?, count(*) FROM events "
            f"WHERE {where} AND timestamp_ms >= ? AND timestamp_ms < ? GROUP BY 1"
        )
        bound = [origin, interval_ms, *params, origin, origin + interval_ms * buckets]
        rows = await self._run(lambda connection: connection.execute(sql, bound).fetchall())
        for bucket, count in rows:
            counts[int(bucket)] = int(count)
        return counts

    async def set_tags(self, event_id: str, tags: Sequence[str]) -> CanonicalEvent | None:
        unique_tags = list(dict.fromkeys(tags))

        def change(doc: dict[str, Any]) -> None:
            doc["tags"] = unique_tags

        return await self._run(
            lambda connection: _change_event(connection, event_id, change, tags=unique_tags)
        )

    async def add_comment(self, event_id: str, comment: Comment) -> CanonicalEvent | None:
        def change(doc: dict[str, Any]) -> None:
            doc["comments"].append(comment.model_dump())

        return await self._run(lambda connection: _change_event(connection, event_id, change))

    async def purge_expired(self, now: datetime | None = None) -> int:
        """Delete events ingested before now - retention_days, a batch per transaction."""
        cutoff = timestamp_ms((now or utc_now()) - timedelta(days=self.retention_days))
        purged = 0
        while True:
            deleted = await self._run(lambda connection: _purge_batch(connection, cutoff))
            purged += deleted
            if deleted < PURGE_BATCH:
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
        encoded = _dumps(value)
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


def _existing(
    connection: sqlite3.Connection, dedupe_keys: list[str]
) -> dict[str, tuple[int, str, str]]:
    """dedupe_key -> (seq, id, doc) of the events already stored under those keys."""
    found: dict[str, tuple[int, str, str]] = {}
    for start in range(0, len(dedupe_keys), LOOKUP_CHUNK):
        chunk = dedupe_keys[start : start + LOOKUP_CHUNK]
        marks = ", ".join("?" * len(chunk))
        for key, seq, event_id, doc in connection.execute(
            f"SELECT dedupe_key, seq, id, doc FROM events WHERE dedupe_key IN ({marks})", chunk
        ):
            found[key] = (seq, event_id, doc)
    return found


def _upsert(connection: sqlite3.Connection, batch: list[CanonicalEvent]) -> UpsertResult:
    """One transaction per batch; an update keeps the stored id, tags and comments."""
    inserted = updated = 0
    with _transaction(connection):
        existing = _existing(connection, [event.dedupe_key for event in batch])
        for event in batch:
            doc = event.model_dump()
            terms = " ".join(search_terms_for(event))
            found = existing.get(event.dedupe_key)
            if found is None:
                cursor = connection.execute(
                    "INSERT INTO events (id, dedupe_key, timestamp_ms, ingested_at_ms, service, "
                    "operation, result, source, actor_display, actor_lower, doc) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (event.id, event.dedupe_key, *_row_values(event), _dumps(doc)),
                )
                seq = cursor.lastrowid
                connection.execute(
                    "INSERT INTO event_search (rowid, terms) VALUES (?, ?)", (seq, terms)
                )
                connection.executemany(
                    "INSERT OR IGNORE INTO event_tags (tag, event_seq) VALUES (?, ?)",
                    [(tag, seq) for tag in event.tags],
                )
                inserted += 1
                continue
            seq, stored_id, stored_doc = found
            kept = orjson.loads(stored_doc)
            doc.update(id=stored_id, tags=kept["tags"], comments=kept["comments"])
            connection.execute(
                "UPDATE events SET timestamp_ms = ?, ingested_at_ms = ?, service = ?, "
                "operation = ?, result = ?, source = ?, actor_display = ?, actor_lower = ?, "
                "doc = ? WHERE seq = ?",
                (*_row_values(event), _dumps(doc), seq),
            )
            connection.execute("UPDATE event_search SET terms = ? WHERE rowid = ?", (terms, seq))
            updated += 1
        connection.executemany(
            "INSERT OR IGNORE INTO event_actors (actor_display, actor_lower) VALUES (?, ?)",
            {(event.actor_display, event.actor_display.lower()) for event in batch},
        )
    return UpsertResult(inserted=inserted, updated=updated)


def _create_actors_table(connection: sqlite3.Connection) -> None:
    """Create `event_actors`, backfilled from the events of a database made before it existed."""
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'event_actors'"
    ).fetchone()
    if exists:
        return
    with _transaction(connection):
        connection.execute(ACTORS_SCHEMA)
        connection.execute(
            "INSERT OR IGNORE INTO event_actors (actor_display, actor_lower) "
            "SELECT DISTINCT actor_display, actor_lower FROM events"
        )


def _filter_options(connection: sqlite3.Connection) -> FilterOptions:
    def distinct(sql: str) -> list[str]:
        return [value for (value,) in connection.execute(sql, (MAX_FILTER_OPTIONS,))]

    options = {
        name: distinct(f"SELECT DISTINCT {column} FROM events ORDER BY {column} LIMIT ?")
        for name, column in OPTION_COLUMNS.items()
    }
    options["tags"] = distinct("SELECT DISTINCT tag FROM event_tags ORDER BY tag LIMIT ?")
    return FilterOptions(**options)


def _change_event(
    connection: sqlite3.Connection,
    event_id: str,
    change: Callable[[dict[str, Any]], None],
    *,
    tags: list[str] | None = None,
) -> CanonicalEvent | None:
    """Apply `change` to one stored event's JSON (and replace its tag rows when `tags` is given)."""
    with _transaction(connection):
        row = connection.execute("SELECT seq, doc FROM events WHERE id = ?", (event_id,)).fetchone()
        if row is None:
            return None
        seq, stored_doc = row
        doc = orjson.loads(stored_doc)
        change(doc)
        encoded = _dumps(doc)
        connection.execute("UPDATE events SET doc = ? WHERE seq = ?", (encoded, seq))
        if tags is not None:
            connection.execute("DELETE FROM event_tags WHERE event_seq = ?", (seq,))
            connection.executemany(
                "INSERT INTO event_tags (tag, event_seq) VALUES (?, ?)",
                [(tag, seq) for tag in tags],
            )
    return CanonicalEvent.model_validate_json(encoded)


def _purge_batch(connection: sqlite3.Connection, cutoff_ms: int) -> int:
    """Delete up to PURGE_BATCH events ingested before the cutoff, with their index rows."""
    with _transaction(connection):
        seqs = [
            (seq,)
            for (seq,) in connection.execute(
                "SELECT seq FROM events WHERE ingested_at_ms < ? LIMIT ?",
                (cutoff_ms, PURGE_BATCH),
            )
        ]
        connection.executemany("DELETE FROM event_search WHERE rowid = ?", seqs)
        connection.executemany("DELETE FROM event_tags WHERE event_seq = ?", seqs)
        connection.executemany("DELETE FROM events WHERE seq = ?", seqs)
    return len(seqs)


def _insert_alerts(connection: sqlite3.Connection, alerts: Sequence[Alert]) -> list[str]:
    """INSERT OR IGNORE on the primary key: an alert id already stored is left exactly as it is."""
    inserted: list[str] = []
    with _transaction(connection):
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
    with _transaction(connection):
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
