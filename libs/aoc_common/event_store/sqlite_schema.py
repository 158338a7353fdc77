"""The embedded store's tables, and moving a database made by an earlier AOC onto them.

Layout (schema 3), chosen by measuring what each part costs the sink (bench/store_sink.py) and
what the API's queries read (bench/api.py):
- `events` is narrow: the columns filters, sorting, counts and facets read, about 150 bytes a
  row. The event's JSON lives apart in `event_docs`, read only for the rows a page returns.
- Writes are cheap when they append. A sink commits a few hundred events at a time, and an index
  whose new entries land all over it (a hash, an actor name out of thousands) dirties about one
  page per event per index in every commit; one whose entries land at its end dirties a few. So
  there is one wide index in time order, `events_by_time`, carrying every filter column: a page,
  a count or a facet sample walks it newest (or oldest) first and tests filters on its entries,
  never touching the table. It costs about 1 µs per event; an actor index alone cost 22 µs.
- A *rare* value (an operation seen twice, one actor of thousands) is found through
  `event_search` instead of an index of its own: beside an event's words it holds one token per
  filter value (`value_token`), and FTS5 stores tokens like an LSM tree (sorted segments written
  once per commit, merged in the background), which costs about 2 µs per token.
- `event_search` is a contentless FTS5 index (`content=''`): it stores the index, not a second
  copy of every event's words. Removing an event needs its words again, so they are recomputed
  from its stored JSON (`search_text_of`); `SEARCH_TEXT_VERSION` records how they were computed,
  and a database indexed another way is re-indexed when it is opened.
- There is no index on ids or dedupe keys: one on a hash of a random key dirties a page per event
  per commit and cost a third of the sink's time. An id is a token in `event_search` too
  (`id_token`), which is how `get_event` finds it from any process; a writer keeps an in-memory
  map of dedupe-key hash (the `key_hash` column) -> seq for its upserts (`KeyMap` in
  sqlite_writes.py).
- `seq` (the FTS rowid and the key of tags and documents) is AUTOINCREMENT: a seq is never
  reused, so nothing left behind by a deleted event can ever point at a new one.
- `store_meta.words_generation` counts the times words of stored events were replaced or removed
  (`words_changed`): a reader that keeps what it learnt of search words folds in added events
  (new seqs) and starts over when this changes (`sqlite_word_cache`).
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Callable, Iterator, Set
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from hashlib import blake2b

from aoc_common.event_store.encoded import EncodedEvent, IndexedFields, indexed_fields_of
from aoc_common.query import VALUE_FILTERS
from aoc_common.search import event_search_text

SCHEMA_VERSION = 3
# Bump when `search_text_of` indexes different tokens: the index is then rebuilt on open.
SEARCH_TEXT_VERSION = 2
FTS_AUTOMERGE = 16
FTS_PAGE_BYTES = 8_000
# Events moved per statement batch when migrating or re-indexing.
COPY_BATCH = 2_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)

EVENT_COLUMNS = (
    "seq",
    "id",
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
# `VALUE_FILTERS` field -> the letter that starts its tokens in `event_search`.
VALUE_TOKEN_LETTERS = {
    "service": "s",
    "operation": "o",
    "category": "c",
    "result": "r",
    "source": "u",
    "actor_type": "t",
    "actor_display": "a",
}
assert set(VALUE_TOKEN_LETTERS) == set(VALUE_FILTERS)
VALUE_TOKEN_FIELDS = (
    "service",
    "operation",
    "category",
    "result",
    "source",
    "actor_type",
    "actor_display",
)
# A value token starts with "§", which no search can produce: query tokens are letters and digits
# only (`query_tokens`), and FTS5's ascii tokenizer keeps the non-ASCII "§" inside the token.
VALUE_TOKEN_MARK = "\u00a7"  # noqa: S105 - a marker, not a secret

EVENT_INDEXES = {
    "events_by_time": (
        "events (timestamp_ms, id, service, category, operation, result, source, actor_type, "
        "actor_display)"
    ),
}

EVENT_TABLES = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
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
    terms, tokenize = 'ascii', detail = none, content = '', columnsize = 0
);
CREATE TABLE IF NOT EXISTS event_values (
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (field, value)
) WITHOUT ROWID;
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
# index serves) scans thousands of actors instead of a million events. Filled by upserts;
# backfilled whenever the table is missing. Actors whose events were purged stay: harmless.
ACTORS_TABLE = """
CREATE TABLE IF NOT EXISTS event_actors (
    actor_display TEXT PRIMARY KEY,
    actor_lower TEXT NOT NULL
) WITHOUT ROWID
"""


def text_hash(text: str) -> int:
    """A signed 64-bit hash (SQLite's INTEGER) of a dedupe key or an id."""
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def id_hash(event_id: str) -> int:
    """The 64-bit hash of an event id. An id in UUID form is a hash already (the normalizer's are
    SHA-1 based, `event_id_for`), so its first 64 bits are used as they are; any other id is
    hashed."""
    if len(event_id) == 36 and event_id[8] == event_id[13] == event_id[18] == "-":
        try:
            value = int(event_id[:8] + event_id[9:13] + event_id[14:18], 16)
        except ValueError:
            return text_hash(event_id)
        return value - (1 << 64) if value >= 1 << 63 else value
    return text_hash(event_id)


@lru_cache(maxsize=65_536)
def value_token(field: str, value: str) -> str:
    """The `event_search` token of a filter value. A CRC-32 can be shared by two values: a query
    that finds events by token always tests the column too, so a shared token only costs a few
    extra candidates."""
    return f"{VALUE_TOKEN_MARK}{VALUE_TOKEN_LETTERS[field]}{zlib.crc32(value.encode()):08x}"


def id_token(event_id: str) -> str:
    """The `event_search` token of an event id (its 64-bit hash, so shared only by chance: a
    lookup always compares the id itself)."""
    return f"{VALUE_TOKEN_MARK}i{id_hash(event_id) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def search_text_of(fields: IndexedFields, event_id: str) -> str:
    """What `event_search` holds for an event stored under `event_id`: its words, one token per
    filter value and one for its id. Inserted with the event, and given again to remove it."""
    tokens = _value_tokens(
        value_token, fields.service, fields.operation, fields.category, fields.result, fields.source
    )
    return (
        f"{event_search_text(fields.text_fields, fields.raw_text)} {tokens} "
        f"{value_token('actor_type', fields.actor.type)} "
        f"{value_token('actor_display', fields.actor_display)} {id_token(event_id)}"
    )


@lru_cache(maxsize=65_536)
def _value_tokens(token_of: Callable[[str, str], str], *values: str) -> str:
    """The value tokens of one combination of service, operation, category, result and source,
    in VALUE_TOKEN_FIELDS order (a few hundred combinations recur: one lookup instead of five;
    the actor, one of thousands, is looked up on its own). Keyed by the token function too, so
    that tokens made another way are never read from the cache."""
    return " ".join(
        token_of(field, value) for field, value in zip(VALUE_TOKEN_FIELDS, values, strict=False)
    )


def epoch_ms(value: datetime) -> int:
    """Milliseconds since the epoch of a UTC datetime already cut to milliseconds (as
    `IndexedFields` holds them), in integer arithmetic."""
    return (value - _EPOCH) // _MILLISECOND


def event_row(seq: int, event_id: str, fields: IndexedFields) -> tuple[object, ...]:
    """The `events` row of an event, in EVENT_COLUMNS order."""
    return (
        seq,
        event_id,
        text_hash(fields.dedupe_key),
        epoch_ms(fields.timestamp),
        epoch_ms(fields.ingested_at),
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
        columns = _columns(connection, "events")
        rebuilt = False
        if "doc" in columns:  # schema 1: one wide table, FTS5 keeping its own copy
            connection.execute("ALTER TABLE events RENAME TO legacy_events")
            _drop_indexes_of(connection, "legacy_events", keep=set())
            connection.execute("DROP TABLE IF EXISTS event_search")
            rebuilt = True
        elif "id_hash" in columns:  # schema 2: an id hash column, an index per filter
            _drop_indexes_of(connection, "events", keep=set())
            connection.execute("ALTER TABLE events DROP COLUMN id_hash")
        _drop_outdated_search_index(connection)
        for statement in _statements(EVENT_TABLES + OTHER_TABLES):
            connection.execute(statement)
        _drop_indexes_of(connection, "events", keep=set(EVENT_INDEXES))
        # Stored in the FTS table, so set once for every connection, measured in
        # bench/store_sink.py (each relative to the layout without it, same run):
        # - merge 16 segments of a level at a time instead of 4: each token is rewritten about
        #   half as often while events arrive (+13-20 %); a lookup reads a few more segments;
        # - leaves of 8,000 bytes instead of 1,000 in 32 KiB pages (+7-13 %).
        for option, value in (("automerge", FTS_AUTOMERGE), ("pgsz", FTS_PAGE_BYTES)):
            connection.execute(
                "INSERT INTO event_search (event_search, rank) VALUES (?, ?)", (option, value)
            )
        for name, target in EVENT_INDEXES.items():
            connection.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")
        _ensure_actors(connection)
        if rebuilt:
            _copy_legacy_events(connection)
        _ensure_search_index(connection, rebuilt=rebuilt)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def schema_is_current(connection: sqlite3.Connection) -> bool:
    """The file already holds this version's schema (nothing to create or upgrade)."""
    return bool(connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION)


def _drop_outdated_search_index(connection: sqlite3.Connection) -> None:
    """Drop an `event_search` made with other options (it is created again and filled from the
    documents by `_ensure_search_index`). `columnsize = 0`: the per-row sizes FTS5 keeps for
    ranking cost an insert per event (+21 % without them) and nothing here ranks."""
    row = connection.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'event_search'"
    ).fetchone()
    if row is None or "columnsize = 0" in row[0]:
        return
    connection.execute("DROP TABLE event_search")
    if _columns(connection, "store_meta"):
        connection.execute("DELETE FROM store_meta WHERE key = 'search_text_version'")


def _statements(script: str) -> list[str]:
    """The statements of a DDL script, for running one by one inside a transaction
    (`executescript` would commit it)."""
    return [statement.strip() for statement in script.split(";") if statement.strip()]


def _columns(connection: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}


def _drop_indexes_of(connection: sqlite3.Connection, table: str, *, keep: set[str]) -> None:
    """Drop the indexes an earlier layout made on `table` (each costs every write)."""
    names = [
        name
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND sql IS NOT NULL",
            (table,),
        )
    ]
    for name in names:
        if name not in keep:
            connection.execute(f'DROP INDEX "{name}"')


def _copy_legacy_events(connection: sqlite3.Connection) -> None:
    """Move schema-1 events (their JSON was validated when stored) into the current layout,
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


def insert_rows(
    connection: sqlite3.Connection,
    rows: list[tuple[int, str, EncodedEvent]],
    known: KnownValues | None = None,
) -> None:
    """Insert events under the given seqs and ids: the row, the document, the words, the tags,
    and values not seen before."""
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
        [(seq, search_text_of(event.fields, event_id)) for seq, event_id, event in rows],
    )
    tags = [(tag, seq) for seq, _, event in rows for tag in dict.fromkeys(event.fields.tags)]
    if tags:
        connection.executemany(
            "INSERT OR IGNORE INTO event_tags (tag, event_seq) VALUES (?, ?)", tags
        )
    remember_values(connection, [event.fields for _, _, event in rows], known or KnownValues())


class KnownValues:
    """The filter values and actors a writer already recorded, so that a batch writes only new
    ones. Values are never removed from their tables, so what one connection knows stays true
    whatever the others do."""

    def __init__(self) -> None:
        self.values: set[tuple[str, str]] = set()
        self.actors: set[str] = set()


def remember_values(
    connection: sqlite3.Connection, events: list[IndexedFields], known: KnownValues
) -> None:
    """Record each distinct filter value and actor once (for filter options and the actor
    filter)."""
    record_values(
        connection, filter_values(events), {fields.actor_display for fields in events}, known
    )


def filter_values(events: list[IndexedFields]) -> set[tuple[str, str]]:
    """The distinct (field, value) pairs of these events that `event_values` lists."""
    return {
        (field, value)
        for fields in events
        for field, value in (
            ("service", fields.service),
            ("operation", fields.operation),
            ("result", fields.result),
            ("source", fields.source),
        )
    }


def record_values(
    connection: sqlite3.Connection,
    values: Set[tuple[str, str]],
    actors: Set[str],
    known: KnownValues,
) -> None:
    """Record the values and actors this connection has not recorded yet."""
    values = values - known.values
    if values:
        connection.executemany(
            "INSERT OR IGNORE INTO event_values (field, value) VALUES (?, ?)", sorted(values)
        )
    actors = actors - known.actors
    if actors:
        connection.executemany(
            "INSERT OR IGNORE INTO event_actors (actor_display, actor_lower) VALUES (?, ?)",
            [(actor, actor.lower()) for actor in sorted(actors)],
        )
    known.values |= values
    known.actors |= actors


def _ensure_actors(connection: sqlite3.Connection) -> None:
    """Create `event_actors` when missing, backfilled from the stored events (lowercased by
    Python, as the filter's input is: SQLite's lower() only knows ASCII)."""
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'event_actors'"
    ).fetchone()
    if exists:
        return
    connection.execute(ACTORS_TABLE)
    actors = [actor for (actor,) in connection.execute("SELECT DISTINCT actor_display FROM events")]
    connection.executemany(
        "INSERT OR IGNORE INTO event_actors (actor_display, actor_lower) VALUES (?, ?)",
        [(actor, actor.lower()) for actor in actors],
    )


def _ensure_search_index(connection: sqlite3.Connection, *, rebuilt: bool) -> None:
    """Re-index every event when the index was made by another SEARCH_TEXT_VERSION (and fill
    the values table that came with it), then record the version."""
    row = connection.execute(
        "SELECT value FROM store_meta WHERE key = 'search_text_version'"
    ).fetchone()
    current = row is not None and int(row[0]) == SEARCH_TEXT_VERSION
    if not current or rebuilt:
        words_changed(connection)
    if not current and not rebuilt:
        connection.execute("INSERT INTO event_search (event_search) VALUES ('delete-all')")
        last = 0
        while True:
            docs = connection.execute(
                "SELECT d.seq, e.id, d.doc FROM event_docs AS d JOIN events AS e ON e.seq = d.seq "
                "WHERE d.seq > ? ORDER BY d.seq LIMIT ?",
                (last, COPY_BATCH),
            ).fetchall()
            if not docs:
                break
            stored = [(seq, event_id, stored_fields(doc)) for seq, event_id, doc in docs]
            connection.executemany(
                "INSERT INTO event_search (rowid, terms) VALUES (?, ?)",
                [(seq, search_text_of(fields, event_id)) for seq, event_id, fields in stored],
            )
            remember_values(connection, [fields for _, _, fields in stored], KnownValues())
            last = docs[-1][0]
    connection.execute(
        "INSERT INTO store_meta (key, value) VALUES ('search_text_version', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(SEARCH_TEXT_VERSION),),
    )


WORDS_GENERATION = "words_generation"


def words_changed(connection: sqlite3.Connection) -> None:
    """Record that words of stored events were replaced or removed (inserts add events under new
    seqs and record nothing): a reader keeping what it knows of words across snapshots
    (`sqlite_word_cache`) then starts over. In the writer's transaction."""
    connection.execute(
        "INSERT INTO store_meta (key, value) VALUES (?, '1') "
        "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        (WORDS_GENERATION,),
    )


def words_generation(connection: sqlite3.Connection) -> str:
    """How many times words of stored events were replaced or removed ("0": never)."""
    row = connection.execute(
        "SELECT value FROM store_meta WHERE key = ?", (WORDS_GENERATION,)
    ).fetchone()
    return "0" if row is None else str(row[0])


def stored_fields(doc: str) -> IndexedFields:
    """The indexed fields of a stored document (to remove its words, or to re-index it)."""
    return indexed_fields_of(doc.encode())


def stored_search_text(doc: str) -> str:
    """What `event_search` holds for a stored document (its `id` is the stored id)."""
    fields = stored_fields(doc)
    return search_text_of(fields, fields.id)


def seqs_with_id(connection: sqlite3.Connection, event_id: str) -> list[int]:
    """The seq of the event stored under this id (a list: empty or one), found by its token."""
    return [
        seq
        for (seq,) in connection.execute(
            "SELECT seq FROM events WHERE seq IN (SELECT rowid FROM event_search "
            "WHERE event_search MATCH ?) AND id = ?",
            (f'"{id_token(event_id)}"', event_id),
        )
    ]
