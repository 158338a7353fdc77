"""Event writes of the embedded store: upserts, analysts' changes and retention. Functions of a
connection, run on the store's thread, each in one write transaction.

An upsert batch costs a handful of `executemany` calls whatever its size: one lookup of the
batch's key hashes in the writer's in-memory map, one insert per table for the new events.
Updates (a record Microsoft reported again) are the rare case and go row by row, because each
keeps what analysts added to the stored event.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import orjson

from aoc_common.event_store.encoded import EncodedEvent
from aoc_common.event_store.sqlite_schema import (
    EVENT_COLUMNS,
    KnownValues,
    event_row,
    insert_rows,
    remember_values,
    search_text_of,
    seqs_with_id,
    stored_search_text,
    text_hash,
    transaction,
)
from aoc_common.query import UpsertResult

# Keys looked up per statement, well under SQLite's bound-parameter limit.
LOOKUP_CHUNK = 500
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
    processes inserted meanwhile. Seqs are never reused, so an entry whose event was deleted only
    finds nothing, and an update keeps its seq and key."""

    def __init__(self) -> None:
        self.known_through: int | None = None

    def refresh(self, connection: sqlite3.Connection) -> None:
        if self.known_through is None:
            connection.execute(
                "CREATE TEMP TABLE IF NOT EXISTS event_keys (key_hash INTEGER NOT NULL, "
                "seq INTEGER NOT NULL, PRIMARY KEY (key_hash, seq)) WITHOUT ROWID"
            )
            connection.execute("DELETE FROM temp.event_keys")
            self.known_through = 0
        connection.execute(
            "INSERT OR IGNORE INTO temp.event_keys (key_hash, seq) "
            "SELECT key_hash, seq FROM events WHERE seq > ?",
            (self.known_through,),
        )
        row = connection.execute("SELECT max(seq) FROM events").fetchone()
        self.known_through = max(self.known_through, row[0] or 0)

    def seqs(self, connection: sqlite3.Connection, key_hashes: list[int]) -> list[int]:
        found: list[int] = []
        for start in range(0, len(key_hashes), LOOKUP_CHUNK):
            chunk = key_hashes[start : start + LOOKUP_CHUNK]
            marks = ", ".join("?" * len(chunk))
            found += [
                seq
                for (seq,) in connection.execute(
                    f"SELECT seq FROM temp.event_keys WHERE key_hash IN ({marks})", chunk
                )
            ]
        return found

    def add(self, connection: sqlite3.Connection, rows: list[tuple[int, int]]) -> None:
        """Remember (key_hash, seq) of rows this connection just inserted."""
        connection.executemany(
            "INSERT OR IGNORE INTO temp.event_keys (key_hash, seq) VALUES (?, ?)", rows
        )
        self.known_through = max(seq for _, seq in rows)


class WriterState:
    """What one connection remembers between its upserts (see `KeyMap`, `KnownValues`)."""

    def __init__(self) -> None:
        self.keys = KeyMap()
        self.known = KnownValues()

    def forget(self) -> None:
        """After a failed transaction: what was learned in it may not be in the tables."""
        self.keys = KeyMap()
        self.known = KnownValues()


def upsert(
    connection: sqlite3.Connection, batch: list[EncodedEvent], state: WriterState
) -> UpsertResult:
    """One transaction per batch; an update keeps the stored id, tags and comments."""
    try:
        return _upsert(connection, batch, state)
    except BaseException:
        state.forget()
        raise


def _upsert(
    connection: sqlite3.Connection, batch: list[EncodedEvent], state: WriterState
) -> UpsertResult:
    keys = state.keys
    with transaction(connection):
        keys.refresh(connection)
        stored = _stored_by_key(connection, batch, keys)
        new: list[EncodedEvent] = []
        updated = 0
        for event in batch:
            found = stored.get(event.fields.dedupe_key)
            if found is None:
                new.append(event)
            else:
                _update(connection, event, *found)
                updated += 1
        if new:
            first = _next_seq(connection)
            rows = [(first + n, event.fields.id, event) for n, event in enumerate(new)]
            insert_rows(connection, rows, state.known)
            keys.add(connection, [(text_hash(e.fields.dedupe_key), seq) for seq, _, e in rows])
        if updated:
            remember_values(connection, [event.fields for event in batch], state.known)
    return UpsertResult(inserted=len(new), updated=updated)


def _next_seq(connection: sqlite3.Connection) -> int:
    """The first seq never used (AUTOINCREMENT's record), read under the write lock."""
    row = connection.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return (int(row[0]) if row else 0) + 1


def _stored_by_key(
    connection: sqlite3.Connection, batch: list[EncodedEvent], keys: KeyMap
) -> dict[str, tuple[int, str, str]]:
    """dedupe_key -> (seq, id, doc) of the batch's events already stored: the key map lists
    candidates by hash, and a candidate is the same event only when its stored document carries
    the same dedupe key."""
    wanted = {event.fields.dedupe_key for event in batch}
    seqs = keys.seqs(connection, list({text_hash(key) for key in wanted}))
    candidates: dict[int, tuple[str, str]] = {}
    for start in range(0, len(seqs), LOOKUP_CHUNK):
        candidates.update(_with_docs(connection, seqs[start : start + LOOKUP_CHUNK]))
    found: dict[str, tuple[int, str, str]] = {}
    for seq, (event_id, doc) in candidates.items():
        key = orjson.loads(doc)["dedupe_key"]
        if key in wanted:
            found[key] = (seq, event_id, doc)
    return found


def _with_docs(connection: sqlite3.Connection, seqs: list[int]) -> dict[int, tuple[str, str]]:
    """seq -> (id, doc) of these events (those still stored)."""
    if not seqs:
        return {}
    marks = ", ".join("?" * len(seqs))
    rows = connection.execute(
        f"SELECT e.seq, e.id, d.doc FROM events AS e JOIN event_docs AS d ON d.seq = e.seq "
        f"WHERE e.seq IN ({marks})",
        seqs,
    )
    return {seq: (event_id, doc) for seq, event_id, doc in rows}


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
