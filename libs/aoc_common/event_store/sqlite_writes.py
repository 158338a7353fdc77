"""Event writes of the embedded store: upserts, analysts' changes and retention. Functions of a
connection, run on the store's thread, each in one write transaction.

An upsert batch costs a handful of `executemany` calls whatever its size: one lookup of the batch's
key hashes, one insert per table for the new events. Updates (a record Microsoft reported again)
are the rare case and go row by row, because each keeps what analysts added to the stored event.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import orjson

from aoc_common.event_store.encoded import EncodedEvent
from aoc_common.event_store.sqlite_schema import (
    EVENT_COLUMNS,
    event_row,
    insert_rows,
    search_text_of,
    stored_fields,
    text_hash,
    transaction,
)
from aoc_common.query import UpsertResult

# Keys looked up per statement, well under SQLite's bound-parameter limit.
LOOKUP_CHUNK = 500
# Rows deleted per purge transaction: a long purge then never holds the writer (and the worker
# thread the API also waits on) for more than a moment.
PURGE_BATCH = 2_000


def upsert(connection: sqlite3.Connection, batch: list[EncodedEvent]) -> UpsertResult:
    """One transaction per batch; an update keeps the stored id, tags and comments."""
    with transaction(connection):
        stored = _stored_by_key(connection, batch)
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
            insert_rows(
                connection,
                [(first + n, event.fields.id, event) for n, event in enumerate(new)],
            )
        connection.executemany(
            "INSERT OR IGNORE INTO event_actors (actor_display, actor_lower) VALUES (?, ?)",
            {(actor, actor.lower()) for actor in {e.fields.actor_display for e in batch}},
        )
    return UpsertResult(inserted=len(new), updated=updated)


def _next_seq(connection: sqlite3.Connection) -> int:
    """The first seq never used (AUTOINCREMENT's record), read under the write lock."""
    row = connection.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return (int(row[0]) if row else 0) + 1


def _stored_by_key(
    connection: sqlite3.Connection, batch: list[EncodedEvent]
) -> dict[str, tuple[int, str, str]]:
    """dedupe_key -> (seq, id, doc) of the batch's events already stored. A key hash matches the
    stored document's own dedupe key, or it is a collision and not the same event."""
    keys = {event.fields.dedupe_key for event in batch}
    hashes = list({text_hash(key) for key in keys})
    found: dict[str, tuple[int, str, str]] = {}
    for start in range(0, len(hashes), LOOKUP_CHUNK):
        chunk = hashes[start : start + LOOKUP_CHUNK]
        marks = ", ".join("?" * len(chunk))
        rows = connection.execute(
            "SELECT e.seq, e.id, d.doc FROM events AS e "
            f"JOIN event_docs AS d ON d.seq = e.seq WHERE e.key_hash IN ({marks})",
            chunk,
        ).fetchall()
        for seq, event_id, doc in rows:
            key = orjson.loads(doc)["dedupe_key"]
            if key in keys:
                found[key] = (seq, event_id, doc)
    return found


def _update(
    connection: sqlite3.Connection, event: EncodedEvent, seq: int, stored_id: str, stored_doc: str
) -> None:
    """Replace what Microsoft reported; keep the stored id and what analysts added."""
    kept = orjson.loads(stored_doc)
    doc = orjson.loads(event.json)
    doc.update(id=stored_id, tags=kept.get("tags", []), comments=kept.get("comments", []))
    row = event_row(seq, stored_id, event.fields)
    assignments = ", ".join(f"{column} = ?" for column in EVENT_COLUMNS[1:])
    connection.execute(f"UPDATE events SET {assignments} WHERE seq = ?", (*row[1:], seq))
    connection.execute(
        "UPDATE event_docs SET doc = ? WHERE seq = ?", (orjson.dumps(doc).decode(), seq)
    )
    _replace_words(connection, seq, stored_doc, search_text_of(event.fields))


def _replace_words(connection: sqlite3.Connection, seq: int, old_doc: str, new_text: str) -> None:
    old_text = search_text_of(stored_fields(old_doc))
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
        row = connection.execute(
            "SELECT e.seq, d.doc FROM events AS e JOIN event_docs AS d ON d.seq = e.seq "
            "WHERE e.id_hash = ? AND e.id = ?",
            (text_hash(event_id), event_id),
        ).fetchone()
        if row is None:
            return None
        seq, stored_doc = row
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


def purge_batch(connection: sqlite3.Connection, cutoff_ms: int) -> int:
    """Delete up to PURGE_BATCH events ingested before the cutoff, with their words, tags and
    documents."""
    with transaction(connection):
        rows = connection.execute(
            "SELECT e.seq, d.doc FROM events AS e JOIN event_docs AS d ON d.seq = e.seq "
            "WHERE e.ingested_at_ms < ? LIMIT ?",
            (cutoff_ms, PURGE_BATCH),
        ).fetchall()
        seqs = [(seq,) for seq, _ in rows]
        _remove_words(connection, [(seq, search_text_of(stored_fields(doc))) for seq, doc in rows])
        connection.executemany("DELETE FROM event_tags WHERE event_seq = ?", seqs)
        connection.executemany("DELETE FROM event_docs WHERE seq = ?", seqs)
        connection.executemany("DELETE FROM events WHERE seq = ?", seqs)
    return len(rows)
