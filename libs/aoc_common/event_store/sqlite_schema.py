"""The embedded store's tables, and moving a database made by an earlier AOC onto them.

Layout (schema 2), chosen from what the sink writes and the API's queries read:
- `events` is narrow: only the columns filters, sorting, counts and facets read, about 150 bytes a
  row, so walking it (a page, 10,000 rows for a facet sample, a count) touches few pages. The
  event's JSON lives apart in `event_docs`, read only for the rows a page returns.
- Upserts and `get_event` find rows by 64-bit hashes of the dedupe key and the id (`key_hash`,
  `id_hash`): an integer index is a quarter of the size of one on the text and stays in cache at
  millions of events. A hash match is always confirmed on the text itself.
- `event_search` is a contentless FTS5 index (`content=''`): it stores the index, not a second
  copy of every event's words. Removing an event's words needs them again, so they are recomputed
  from its stored JSON (`search_text_of`); `SEARCH_TEXT_VERSION` records how they were computed,
  and a database indexed another way is re-indexed when it is opened.
- `seq` (the FTS rowid and the key of tags and documents) is AUTOINCREMENT: a seq is never
  reused, so nothing left behind by a deleted event can ever point at a new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from hashlib import blake2b

from aoc_common.event_store.encoded import EncodedEvent, IndexedFields
from aoc_common.query import timestamp_ms
from aoc_common.search import event_search_text

SCHEMA_VERSION = 2
# Bump when `event_search_text` indexes different words: the index is then rebuilt on open.
SEARCH_TEXT_VERSION = 1
# Events moved per statement batch when migrating or re-indexing.
COPY_BATCH = 2_000

EVENT_COLUMNS = (
    "seq",
    "id",
    "id_hash",
    "key_hash",
    "timestamp_ms",
    "ingested_at_ms",
    "service",
    "category",
    "operation",
    "result",
    "source",
    "actor_type",
    "actor_display",
)

# One-value filters with an index of their own, each followed by the sort order so that one
# value's events come out newest (or oldest) first without sorting. Chosen from the query plans
# (see bench/api.py): a filter on a value that is common is answered by walking `events_by_time`;
# these make a rare value (an operation, an actor, a category seen in 0.1 % of events) fast.
INDEXED_FILTERS = ("service", "operation", "category", "result", "source", "actor_type")

EVENT_TABLES = f"""
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    id_hash INTEGER NOT NULL,
    key_hash INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    ingested_at_ms INTEGER NOT NULL,
    service TEXT NOT NULL,
    category TEXT NOT NULL,
    operation TEXT NOT NULL,
    result TEXT NOT NULL,
    source TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_display TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (timestamp_ms, id);
CREATE INDEX IF NOT EXISTS events_by_key ON events (key_hash);
CREATE INDEX IF NOT EXISTS events_by_id ON events (id_hash);
CREATE INDEX IF NOT EXISTS events_by_ingestion ON events (ingested_at_ms);
CREATE INDEX IF NOT EXISTS events_by_actor ON events (actor_display, timestamp_ms, id);
{
    "".join(
        f"CREATE INDEX IF NOT EXISTS events_by_{column} ON events ({column}, timestamp_ms, id);"
        for column in INDEXED_FILTERS
    )
}
CREATE TABLE IF NOT EXISTS event_docs (
    seq INTEGER PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS event_tags (
    tag TEXT NOT NULL,
    event_seq INTEGER NOT NULL,
    PRIMARY KEY (tag, event_seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS event_tags_by_event ON event_tags (event_seq);
CREATE VIRTUAL TABLE IF NOT EXISTS event_search USING fts5(
    terms, tokenize = 'ascii', detail = none, content = ''
);
CREATE TABLE IF NOT EXISTS store_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

OTHER_TABLES = """
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
# matching events through `events_by_actor`. Filled by upserts; backfilled whenever the table is
# missing. Actors whose events were purged stay: harmless.
ACTORS_TABLE = """
CREATE TABLE IF NOT EXISTS event_actors (
    actor_display TEXT PRIMARY KEY,
    actor_lower TEXT NOT NULL
) WITHOUT ROWID;
"""

# The tables and indexes of schema 1 (AOC before this layout) that schema 2 replaces.
LEGACY_INDEXES = (
    "events_newest_first",
    "events_service",
    "events_operation",
    "events_result",
    "events_source",
    "events_actor",
    "events_ingested_at",
)


def text_hash(text: str) -> int:
    """A signed 64-bit hash (SQLite's INTEGER) of a dedupe key or an event id."""
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def search_text_of(fields: IndexedFields) -> str:
    """What `event_search` holds for an event: inserted with it, and given again to remove it."""
    return event_search_text(fields.text_fields, fields.raw_text)


def event_row(seq: int, event_id: str, fields: IndexedFields) -> tuple[object, ...]:
    """The `events` row of an event, in EVENT_COLUMNS order."""
    return (
        seq,
        event_id,
        text_hash(event_id),
        text_hash(fields.dedupe_key),
        timestamp_ms(fields.timestamp),
        timestamp_ms(fields.ingested_at),
        fields.service,
        fields.category,
        fields.operation,
        fields.result,
        fields.source,
        fields.actor.type,
        fields.actor_display,
    )


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front, so it never fails half-way, and
    serialises writers across processes (the sink and the API may each hold a connection)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def prepare(connection: sqlite3.Connection) -> None:
    """Create or upgrade the schema, in one write transaction: several processes opening the same
    file at once take turns, and the second finds the work done."""
    with transaction(connection):
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"this database has schema {version}, newer than this AOC understands "
                f"({SCHEMA_VERSION}): upgrade AOC"
            )
        legacy = version < SCHEMA_VERSION and "doc" in _columns(connection, "events")
        if legacy:
            connection.execute("ALTER TABLE events RENAME TO legacy_events")
            for index in LEGACY_INDEXES:
                connection.execute(f"DROP INDEX IF EXISTS {index}")
            connection.execute("DROP TABLE IF EXISTS event_search")
        for statement in _statements(EVENT_TABLES + OTHER_TABLES):
            connection.execute(statement)
        if legacy:
            _copy_legacy_events(connection)
        _ensure_actors(connection)
        _ensure_search_index(connection, rebuilt=legacy)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _statements(script: str) -> list[str]:
    """The statements of a DDL script, for running one by one inside a transaction
    (`executescript` would commit it)."""
    return [statement.strip() for statement in script.split(";") if statement.strip()]


def _columns(connection: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}


def _copy_legacy_events(connection: sqlite3.Connection) -> None:
    """Move schema-1 events (their JSON was already validated when stored) into schema 2,
    keeping each seq so that tags stay attached, then drop the old table."""
    last = 0
    while True:
        rows = connection.execute(
            "SELECT seq, doc FROM legacy_events WHERE seq > ? ORDER BY seq LIMIT ?",
            (last, COPY_BATCH),
        ).fetchall()
        if not rows:
            break
        encoded = [(seq, EncodedEvent.from_json(doc.encode())) for seq, doc in rows]
        insert_rows(connection, [(seq, event.fields.id, event) for seq, event in encoded])
        last = rows[-1][0]
    connection.execute("DROP TABLE legacy_events")


def insert_rows(connection: sqlite3.Connection, rows: list[tuple[int, str, EncodedEvent]]) -> None:
    """Insert events under the given seqs and ids: the row, the document, the words, the tags."""
    marks = ", ".join("?" * len(EVENT_COLUMNS))
    connection.executemany(
        f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({marks})",
        [event_row(seq, event_id, event.fields) for seq, event_id, event in rows],
    )
    connection.executemany(
        "INSERT INTO event_docs (seq, doc) VALUES (?, ?)",
        [(seq, event.json.decode()) for seq, _, event in rows],
    )
    connection.executemany(
        "INSERT INTO event_search (rowid, terms) VALUES (?, ?)",
        [(seq, search_text_of(event.fields)) for seq, _, event in rows],
    )
    tags = [(tag, seq) for seq, _, event in rows for tag in dict.fromkeys(event.fields.tags)]
    if tags:
        connection.executemany(
            "INSERT OR IGNORE INTO event_tags (tag, event_seq) VALUES (?, ?)", tags
        )


def _ensure_actors(connection: sqlite3.Connection) -> None:
    """Create `event_actors` when missing, backfilled from the stored events (lowercased by
    Python, as the filter's input is: SQLite's lower() only knows ASCII)."""
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'event_actors'"
    ).fetchone()
    if exists:
        return
    connection.execute(ACTORS_TABLE.strip().rstrip(";"))
    actors = [actor for (actor,) in connection.execute("SELECT DISTINCT actor_display FROM events")]
    connection.executemany(
        "INSERT OR IGNORE INTO event_actors (actor_display, actor_lower) VALUES (?, ?)",
        [(actor, actor.lower()) for actor in actors],
    )


def _ensure_search_index(connection: sqlite3.Connection, *, rebuilt: bool) -> None:
    """Re-index every event when the index was made by another SEARCH_TEXT_VERSION (or just
    created beside existing events), then record the version."""
    row = connection.execute(
        "SELECT value FROM store_meta WHERE key = 'search_text_version'"
    ).fetchone()
    current = row is not None and int(row[0]) == SEARCH_TEXT_VERSION
    if not current and not rebuilt:
        connection.execute("INSERT INTO event_search (event_search) VALUES ('delete-all')")
        last = 0
        while True:
            docs = connection.execute(
                "SELECT seq, doc FROM event_docs WHERE seq > ? ORDER BY seq LIMIT ?",
                (last, COPY_BATCH),
            ).fetchall()
            if not docs:
                break
            connection.executemany(
                "INSERT INTO event_search (rowid, terms) VALUES (?, ?)",
                [(seq, search_text_of(stored_fields(doc))) for seq, doc in docs],
            )
            last = docs[-1][0]
    connection.execute(
        "INSERT INTO store_meta (key, value) VALUES ('search_text_version', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(SEARCH_TEXT_VERSION),),
    )


def stored_fields(doc: str) -> IndexedFields:
    """The indexed fields of a stored document (to remove its words, or to re-index it)."""
    return IndexedFields.model_validate_json(doc)
