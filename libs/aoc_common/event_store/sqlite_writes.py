"""Event writes of the embedded store: upserts, analysts' changes and retention. Functions of a
connection, run on the store's thread, each in one write transaction.

An upsert batch costs a handful of statements whatever its size, prepared in two steps:
`prepare_batch` (pure Python: rows, search text, key hashes, as JSON and blobs) runs on the
caller's thread, `upsert` on the store's. There each statement writes the whole batch inside
SQLite (`INSERT ... SELECT ... FROM json_each(?)`), so the store's thread holds the GIL only
between statements and a sink can prepare the next batch meanwhile on its own thread: with one
`executemany` per table, every row's step gave the GIL back and waited for it again behind the
thread preparing, and the two took turns instead of running side by side (bench/store_sink.py).
Updates (a record Microsoft reported again) are the rare case and go row by row, because each
keeps what analysts added to the stored event.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import orjson

from aoc_common.event_store.base import PreparedUpsert
from aoc_common.event_store.encoded import EncodedEvent
from aoc_common.event_store.sqlite_schema import (
    EVENT_COLUMNS,
    KnownValues,
    epoch_ms,
    event_row,
    filter_values,
    insert_rows,
    record_values,
    search_text_of,
    seqs_with_id,
    stored_search_text,
    text_hash,
    transaction,
    words_changed,
)
from aoc_common.query import UpsertResult

# Rows deleted per purge transaction: a long purge then never holds the writer (and the worker
# thread the API also waits on) for more than a moment.
PURGE_BATCH = 2_000
# Rows looked at per purge transaction (the narrow rows only: a few milliseconds).
PURGE_SCAN = 50_000


class KeyMap:
    """Dedupe-key hash -> seq of every stored event, in memory (a TEMP table of this connection:
    about 20 bytes an event), for upserts to find stored events without an index on disk.

    Filled from `events` on the first upsert, then before each one from the rows with a seq above
    the last one it knows: the transaction holds the write lock, so that is exactly what other
    processes inserted meanwhile (refreshed again after an insert: that learns the new rows).
    Seqs are never reused, so an entry whose event was deleted only finds nothing, and an update
    keeps its seq and key."""

    def __init__(self) -> None:
        self.known_through: int | None = None

    def refresh(self, connection: sqlite3.Connection) -> int:
        """Learn the rows other writers inserted since this one last looked; returns the first
        seq never used (AUTOINCREMENT's record), read under the write lock."""
        if self.known_through is None:
            connection.execute(
                "CREATE TEMP TABLE IF NOT EXISTS event_keys (key_hash INTEGER NOT NULL, "
                "seq INTEGER NOT NULL, PRIMARY KEY (key_hash, seq)) WITHOUT ROWID"
            )
            connection.execute("DELETE FROM temp.event_keys")
            self.known_through = 0
        self.learn(connection)
        last_stored, last_used = connection.execute(
            "SELECT (SELECT max(seq) FROM events), "
            "(SELECT seq FROM sqlite_sequence WHERE name = 'events')"
        ).fetchone()
        self.known_through = max(self.known_through, last_stored or 0)
        return (last_used or 0) + 1

    def learn(self, connection: sqlite3.Connection, through: int | None = None) -> None:
        """Remember the rows after the last seq known (up to `through`, the last this
        connection just inserted, when given)."""
        connection.execute(
            "INSERT OR IGNORE INTO temp.event_keys (key_hash, seq) "
            "SELECT key_hash, seq FROM events WHERE seq > ?",
            (self.known_through,),
        )
        if through is not None:
            self.known_through = through

    def stored(self, connection: sqlite3.Connection, key_hashes: bytes) -> list[list[Any]]:
        """[seq, id, doc] of the stored events under any of these hashes (a JSON array), read
        as one row: each row a statement returns is one more GIL handover for the store's
        thread, which waits for it while the event loop prepares the next batch."""
        (found,) = connection.execute(
            "SELECT json_group_array(json_array(e.seq, e.id, d.doc)) FROM json_each(?) AS j "
            "JOIN temp.event_keys AS k ON k.key_hash = j.value "
            "JOIN events AS e ON e.seq = k.seq JOIN event_docs AS d ON d.seq = e.seq",
            (key_hashes,),
        ).fetchone()
        rows: list[list[Any]] = orjson.loads(found)
        return rows


class WriterState:
    """What one connection remembers between its upserts (see `KeyMap`, `KnownValues`)."""

    def __init__(self) -> None:
        self.keys = KeyMap()
        self.known = KnownValues()

    def forget(self) -> None:
        """After a failed transaction: what was learned in it may not be in the tables."""
        self.keys = KeyMap()
        self.known = KnownValues()


@dataclass(frozen=True, eq=False)
class PreparedBatch(PreparedUpsert):
    """A batch made ready for `upsert` by pure Python work (`prepare_batch`, on the caller's
    thread), so that the store's thread runs a handful of statements that each write the whole
    batch inside SQLite, holding no GIL, while the caller prepares the next batch.

    `rows` is a JSON array with one array per event (EVENT_COLUMNS after seq, then where its
    document and its search text start in `docs` and `words` and how many bytes they take); the
    statements read it with `json_each`, the documents and words with `substr` of the blobs.
    """

    rows: bytes = b"[]"
    key_hashes: bytes = b"[]"
    docs: bytes = b""
    words: bytes = b""
    tags: bytes = b"[]"
    index_of_key: dict[str, int] = field(default_factory=dict)
    values: frozenset[tuple[str, str]] = frozenset()
    actors: frozenset[str] = frozenset()
    has_nul: bool = False


def prepare_batch(events: list[EncodedEvent]) -> PreparedBatch:
    """Everything `upsert` needs of a batch (its events already one per dedupe key) that Python
    computes: rows, words, key hashes, values."""
    if not events:
        return PreparedBatch(events=[])
    fields = [event.fields for event in events]
    hashes = [text_hash(item.dedupe_key) for item in fields]
    docs = [event.json for event in events]
    words = [search_text_of(item, item.id).encode() for item in fields]
    doc_sizes = [len(doc) for doc in docs]
    word_sizes = [len(text) for text in words]
    doc_starts = accumulate(doc_sizes[:-1], initial=1)
    word_starts = accumulate(word_sizes[:-1], initial=1)
    rows = [
        (
            item.id,
            key_hash,
            epoch_ms(item.timestamp),
            epoch_ms(item.ingested_at),
            item.service,
            item.category,
            item.operation,
            item.result,
            item.source,
            item.actor.type,
            item.actor_display,
            doc_start,
            doc_size,
            word_start,
            word_size,
        )
        for item, key_hash, doc_start, doc_size, word_start, word_size in zip(
            fields, hashes, doc_starts, doc_sizes, word_starts, word_sizes, strict=True
        )
    ]
    tags = [
        (index, tag)
        for index, item in enumerate(fields)
        if item.tags
        for tag in dict.fromkeys(item.tags)
    ]
    rows_json, tags_json = orjson.dumps(rows), orjson.dumps(tags)
    return PreparedBatch(
        events=events,
        rows=rows_json,
        key_hashes=orjson.dumps(hashes),
        docs=b"".join(docs),
        words=b"".join(words),
        tags=tags_json,
        index_of_key={item.dedupe_key: index for index, item in enumerate(fields)},
        values=frozenset(filter_values(fields)),
        actors=frozenset(item.actor_display for item in fields),
        has_nul=b"\\u0000" in rows_json or b"\\u0000" in tags_json,
    )


def upsert(
    connection: sqlite3.Connection, batch: PreparedBatch, state: WriterState
) -> UpsertResult:
    """One transaction per batch; an update keeps the stored id, tags and comments."""
    try:
        return _upsert(connection, batch, state)
    except BaseException:
        state.forget()
        raise


def _upsert(
    connection: sqlite3.Connection, batch: PreparedBatch, state: WriterState
) -> UpsertResult:
    keys = state.keys
    with transaction(connection):
        first = keys.refresh(connection)
        stored = _stored_by_key(connection, batch, keys)
        for key, found in stored.items():
            _update(connection, batch.events[batch.index_of_key[key]], *found)
        if len(stored) < len(batch.events):
            places = sorted(batch.index_of_key[key] for key in stored)
            _insert_new(connection, batch, first, orjson.dumps(places))
            last = max(set(range(len(batch.events))) - set(places))
            keys.learn(connection, through=first + last)
        record_values(connection, batch.values, batch.actors, state.known)
    return UpsertResult(inserted=len(batch.events) - len(stored), updated=len(stored))


# Statements that write a whole batch from its prepared JSON: ?1 the rows, ?2 the first seq (an
# event's seq is the first seq + its place in the batch), ?3 the places of events that were
# updated instead (their seqs stay unused), ?4 the blob the row's text is cut from.
_NEW = "FROM json_each(?1) AS r WHERE r.key NOT IN (SELECT value FROM json_each(?3))"
_INSERT_EVENTS = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) SELECT ?2 + r.key, "
    + ", ".join(f"r.value ->> {n}" for n in range(len(EVENT_COLUMNS) - 1))
    + f" {_NEW}"
)
_DOC_AT = len(EVENT_COLUMNS) - 1
_INSERT_DOCS = (
    "INSERT INTO event_docs (seq, doc) SELECT ?2 + r.key, "
    f"CAST(substr(?4, r.value ->> {_DOC_AT}, r.value ->> {_DOC_AT + 1}) AS TEXT) {_NEW}"
)
_INSERT_WORDS = (
    "INSERT INTO event_search (rowid, terms) SELECT ?2 + r.key, "
    f"CAST(substr(?4, r.value ->> {_DOC_AT + 2}, r.value ->> {_DOC_AT + 3}) AS TEXT) {_NEW}"
)
_INSERT_TAGS = (
    "INSERT OR IGNORE INTO event_tags (tag, event_seq) SELECT r.value ->> 1, ?2 + (r.value ->> 0) "
    "FROM json_each(?1) AS r WHERE (r.value ->> 0) NOT IN (SELECT value FROM json_each(?3))"
)


def _insert_new(
    connection: sqlite3.Connection, batch: PreparedBatch, first: int, skipped: bytes
) -> None:
    """Insert the batch's events but the `skipped` ones (a JSON array of their places)."""
    if batch.has_nul:
        # SQLite's JSON functions end a text at an escaped NUL: these rows go one by one.
        left_out = set(orjson.loads(skipped))
        rows = [
            (first + index, event.fields.id, event)
            for index, event in enumerate(batch.events)
            if index not in left_out
        ]
        insert_rows(connection, rows)
        return
    connection.execute(_INSERT_EVENTS, (batch.rows, first, skipped))
    connection.execute(_INSERT_DOCS, (batch.rows, first, skipped, batch.docs))
    connection.execute(_INSERT_WORDS, (batch.rows, first, skipped, batch.words))
    if batch.tags != b"[]":
        connection.execute(_INSERT_TAGS, (batch.tags, first, skipped))


def _stored_by_key(
    connection: sqlite3.Connection, batch: PreparedBatch, keys: KeyMap
) -> dict[str, tuple[int, str, str]]:
    """dedupe_key -> (seq, id, doc) of the batch's events already stored: the key map lists
    candidates by hash, and a candidate is the same event only when its stored document carries
    the same dedupe key."""
    found: dict[str, tuple[int, str, str]] = {}
    for seq, event_id, doc in keys.stored(connection, batch.key_hashes):
        key = orjson.loads(doc)["dedupe_key"]
        if key in batch.index_of_key:
            found[key] = (seq, event_id, doc)
    return found


def _update(
    connection: sqlite3.Connection, event: EncodedEvent, seq: int, stored_id: str, stored_doc: str
) -> None:
    """Replace what Microsoft reported; keep the stored id and what analysts added. A record sent
    again unchanged (the usual re-delivery) writes nothing."""
    kept = orjson.loads(stored_doc)
    doc = orjson.loads(event.json)
    doc.update(id=stored_id, tags=kept.get("tags", []), comments=kept.get("comments", []))
    if doc == kept:
        return
    row = event_row(seq, stored_id, event.fields)
    assignments = ", ".join(f"{column} = ?" for column in EVENT_COLUMNS[1:])
    connection.execute(f"UPDATE events SET {assignments} WHERE seq = ?", (*row[1:], seq))
    connection.execute(
        "UPDATE event_docs SET doc = ? WHERE seq = ?", (orjson.dumps(doc).decode(), seq)
    )
    _replace_words(connection, seq, stored_doc, search_text_of(event.fields, stored_id))


def _replace_words(connection: sqlite3.Connection, seq: int, old_doc: str, new_text: str) -> None:
    old_text = stored_search_text(old_doc)
    if old_text == new_text:
        return
    _remove_words(connection, [(seq, old_text)])
    connection.execute("INSERT INTO event_search (rowid, terms) VALUES (?, ?)", (seq, new_text))


def _remove_words(connection: sqlite3.Connection, rows: list[tuple[int, str]]) -> None:
    """A contentless FTS5 table forgets a row when given the words it was indexed with."""
    if rows:
        words_changed(connection)
    connection.executemany(
        "INSERT INTO event_search (event_search, rowid, terms) VALUES ('delete', ?, ?)", rows
    )


def change_event(
    connection: sqlite3.Connection,
    event_id: str,
    change: Callable[[dict[str, Any]], None],
    *,
    tags: list[str] | None = None,
) -> str | None:
    """Apply `change` to one stored event's JSON (and replace its tag rows when `tags` is given);
    returns the new JSON, None when there is no such event."""
    with transaction(connection):
        seqs = seqs_with_id(connection, event_id)
        if not seqs:
            return None
        seq = seqs[0]
        (stored_doc,) = connection.execute(
            "SELECT doc FROM event_docs WHERE seq = ?", (seq,)
        ).fetchone()
        doc = orjson.loads(stored_doc)
        change(doc)
        encoded = orjson.dumps(doc).decode()
        connection.execute("UPDATE event_docs SET doc = ? WHERE seq = ?", (encoded, seq))
        if tags is not None:
            connection.execute("DELETE FROM event_tags WHERE event_seq = ?", (seq,))
            connection.executemany(
                "INSERT INTO event_tags (tag, event_seq) VALUES (?, ?)",
                [(tag, seq) for tag in tags],
            )
    return encoded


def purge_batch(connection: sqlite3.Connection, cutoff_ms: int, after_seq: int) -> tuple[int, int]:
    """Delete up to PURGE_BATCH events ingested before the cutoff, with their words, tags and
    documents, looking at seqs after `after_seq`; returns how many went and the last seq looked at
    (0 when the whole table was looked at).

    No index serves this: events are read in seq order, which is ingestion order except for
    updated events, so expired ones come first and an hourly purge of nothing reads the narrow
    table once (a few hundred milliseconds at a million events) instead of every insert paying for
    an index on the ingestion time.
    """
    with transaction(connection):
        scanned = connection.execute(
            "SELECT seq, ingested_at_ms < ? FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (cutoff_ms, after_seq, PURGE_SCAN),
        ).fetchall()
        expired = [seq for seq, old in scanned if old][:PURGE_BATCH]
        if len(expired) == PURGE_BATCH:
            scanned = [row for row in scanned if row[0] <= expired[-1]]
        marks = ", ".join("?" * len(expired))
        docs = dict(
            connection.execute(f"SELECT seq, doc FROM event_docs WHERE seq IN ({marks})", expired)
            if expired
            else ()
        )
        seqs = [(seq,) for seq in expired]
        _remove_words(connection, [(seq, stored_search_text(doc)) for seq, doc in docs.items()])
        connection.executemany("DELETE FROM event_tags WHERE event_seq = ?", seqs)
        connection.executemany("DELETE FROM event_docs WHERE seq = ?", seqs)
        connection.executemany("DELETE FROM events WHERE seq = ?", seqs)
    last = scanned[-1][0] if len(scanned) == PURGE_SCAN or len(expired) == PURGE_BATCH else 0
    return len(expired), last
