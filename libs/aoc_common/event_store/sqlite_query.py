"""Event reads of the embedded store: `EventFilters` as SQL, and the statements that page, count,
facet and bucket events. Functions of a connection, run on the store's thread.

User input only ever becomes a bound parameter. The actor filter is `instr` on lowercased actor
names (of `event_actors`), not LIKE, so `%` and `_` are plain characters; search tokens hold only
letters and digits (see `query_tokens`), so quoting them makes each a literal FTS5 prefix term.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aoc_common.event_store.base import MAX_FILTER_OPTIONS
from aoc_common.query import (
    VALUE_FILTERS,
    Cursor,
    EventFilters,
    FacetCounts,
    FacetValue,
    FilterOptions,
    MatchCount,
    Order,
    timestamp_ms,
)

# Facet field -> the `events` column it counts ("tags" is counted from `event_tags`).
FACET_COLUMNS = {
    "service": "service",
    "operation": "operation",
    "result": "result",
    "actor": "actor_display",
    "category": "category",
    "source": "source",
    "actor_type": "actor_type",
}
OPTION_COLUMNS = {
    "services": "service",
    "operations": "operation",
    "results": "result",
    "sources": "source",
    "actors": "actor_display",
}
ORDER_BY = {
    "newest": "ORDER BY timestamp_ms DESC, id DESC",
    "oldest": "ORDER BY timestamp_ms ASC, id ASC",
}
AFTER_CURSOR = {"newest": "(timestamp_ms, id) < (?, ?)", "oldest": "(timestamp_ms, id) > (?, ?)"}

ACTORS_CONTAINING = "SELECT actor_display FROM event_actors WHERE instr(actor_lower, ?) > 0"

# A tag, search or actor lookup matching more events than this is "common": a page of them is
# found sooner by walking the time index than by collecting and sorting every match (which, for
# a word in a third of a million events, takes hundreds of milliseconds). From bench/api.py.
COMMON_LOOKUP_ROWS = 2_000


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


def where_clause(
    filters: EventFilters, *, cursor: Cursor | None = None, walk_in_order: bool = False
) -> tuple[str, list[Any]]:
    """The WHERE clause (with its bound parameters) for filters and an optional cursor.

    `walk_in_order` (see `walks_in_order`) writes the tag, search and actor lookups with a unary
    `+` (`+seq IN`), which keeps SQLite from driving the query by them: it then walks the time
    index and probes each row's membership, and stops at the page's end.
    """
    member = "+seq IN" if walk_in_order else "seq IN"
    clauses: list[str] = []
    params: list[Any] = []
    for column in VALUE_FILTERS:
        wanted = filters.values_of(column)
        if wanted:
            clauses.append(f"{column} IN ({_marks(wanted)})")
            params.extend(wanted)
        excluded = filters.excluded_of(column)
        if excluded:
            clauses.append(f"{column} NOT IN ({_marks(excluded)})")
            params.extend(excluded)
    if filters.actor:
        actor_column = "+actor_display" if walk_in_order else "actor_display"
        clauses.append(f"{actor_column} IN ({ACTORS_CONTAINING})")
        params.append(filters.actor.lower())
    if filters.start is not None:
        clauses.append("timestamp_ms >= ?")
        params.append(timestamp_ms(filters.start))
    if filters.end is not None:
        clauses.append("timestamp_ms <= ?")
        params.append(timestamp_ms(filters.end))
    for tag in filters.tags:
        clauses.append(f"{member} (SELECT event_seq FROM event_tags WHERE tag = ?)")
        params.append(tag)
    if filters.exclude_tags:
        clauses.append(
            "seq NOT IN (SELECT event_seq FROM event_tags "
            f"WHERE tag IN ({_marks(filters.exclude_tags)}))"
        )
        params.extend(filters.exclude_tags)
    if filters.search_tokens:
        clauses.append(f"{member} (SELECT rowid FROM event_search WHERE event_search MATCH ?)")
        params.append(fts_match(filters))
    if cursor is not None:
        clauses.append(AFTER_CURSOR[cursor.order])
        params.extend([cursor.timestamp_ms, cursor.id])
    return (" AND ".join(clauses) or "1"), params


def fts_match(filters: EventFilters) -> str:
    return " AND ".join(f'"{token}"*' for token in filters.search_tokens)


def walks_in_order(connection: sqlite3.Connection, filters: EventFilters) -> bool:
    """True when every tag, search and actor lookup of the filters is common
    (COMMON_LOOKUP_ROWS). A rare one keeps the default plan: its few matches, sorted, are the
    fastest answer."""
    probes: list[tuple[str, Any]] = [
        ("SELECT event_seq FROM event_tags WHERE tag = ?", tag) for tag in filters.tags
    ]
    if filters.search_tokens:
        probes.append(
            ("SELECT rowid FROM event_search WHERE event_search MATCH ?", fts_match(filters))
        )
    if filters.actor:
        probes.append(
            (
                f"SELECT seq FROM events WHERE actor_display IN ({ACTORS_CONTAINING})",
                filters.actor.lower(),
            )
        )
    if not probes:
        return False
    for lookup, value in probes:
        sql = f"SELECT count(*) FROM ({lookup} LIMIT {COMMON_LOOKUP_ROWS + 1})"
        if connection.execute(sql, (value,)).fetchone()[0] <= COMMON_LOOKUP_ROWS:
            return False
    return True


def page_docs(
    connection: sqlite3.Connection,
    filters: EventFilters,
    cursor: Cursor | None,
    order: Order,
    limit: int,
) -> list[str]:
    """The JSON of up to `limit` matching events after the cursor, in `order`."""
    walk = walks_in_order(connection, filters)
    where, params = where_clause(filters, cursor=cursor, walk_in_order=walk)
    seqs = connection.execute(
        f"SELECT seq FROM events WHERE {where} {ORDER_BY[order]} LIMIT ?", [*params, limit]
    ).fetchall()
    return docs_of(connection, [seq for (seq,) in seqs])


def docs_of(connection: sqlite3.Connection, seqs: list[int]) -> list[str]:
    """The documents of these events, in the order given."""
    if not seqs:
        return []
    found = dict(
        connection.execute(
            f"SELECT seq, doc FROM event_docs WHERE seq IN ({_marks(seqs)})", seqs
        ).fetchall()
    )
    return [found[seq] for seq in seqs if seq in found]


def count_matching(connection: sqlite3.Connection, filters: EventFilters, limit: int) -> MatchCount:
    """Count at most limit + 1 matches: the extra one only says there are more."""
    where, params = where_clause(filters)
    sql = f"SELECT count(*) FROM (SELECT 1 FROM events WHERE {where} LIMIT ?)"
    found = int(connection.execute(sql, [*params, limit + 1]).fetchone()[0])
    if found > limit:
        return MatchCount(value=limit, exact=False)
    return MatchCount(value=found, exact=True)


def facet_counts(
    connection: sqlite3.Connection,
    filters: EventFilters,
    fields: Sequence[str],
    top: int,
    sample: int | None,
) -> FacetCounts:
    """Count the values of each field over the newest `sample` matches (all when None), in SQL:
    the sample is materialised once and grouped per field."""
    where, params = where_clause(filters)
    complete = True
    if sample is not None:
        matched = count_matching(connection, filters, sample)
        complete = matched.exact
    if complete:
        chosen = f"SELECT * FROM events WHERE {where}"
        chosen_params = params
    else:
        walk = walks_in_order(connection, filters)
        where, params = where_clause(filters, walk_in_order=walk)
        chosen = f"SELECT * FROM events WHERE {where} {ORDER_BY['newest']} LIMIT ?"
        chosen_params = [*params, sample]
    parts = ["SELECT '', '', count(*) FROM sample"]
    part_params: list[Any] = []
    for field in fields:
        if field == "tags":
            parts.append(
                "SELECT * FROM (SELECT 'tags', tag, count(*) AS n FROM event_tags "
                "WHERE event_seq IN (SELECT seq FROM sample) GROUP BY tag "
                "ORDER BY n DESC, tag LIMIT ?)"
            )
        else:
            column = FACET_COLUMNS[field]
            parts.append(
                f"SELECT * FROM (SELECT '{field}', {column}, count(*) AS n FROM sample "
                f"GROUP BY {column} ORDER BY n DESC, {column} LIMIT ?)"
            )
        part_params.append(top)
    sql = f"WITH sample AS MATERIALIZED ({chosen}) " + " UNION ALL ".join(parts)
    rows = connection.execute(sql, [*chosen_params, *part_params]).fetchall()
    counted = int(rows[0][2])
    facets: dict[str, list[FacetValue]] = {field: [] for field in fields}
    for field, value, count in rows[1:]:
        facets[field].append(FacetValue(value=value, count=count))
    return FacetCounts(facets=facets, counted=counted, complete=complete)


def count_by_interval(
    connection: sqlite3.Connection,
    filters: EventFilters,
    start: datetime,
    interval_ms: int,
    buckets: int,
) -> list[int]:
    counts = [0] * buckets
    where, params = where_clause(filters)
    origin = timestamp_ms(start)
    sql = (
        "SELECT (timestamp_ms - ?) / ?, count(*) FROM events "
        f"WHERE {where} AND timestamp_ms >= ? AND timestamp_ms < ? GROUP BY 1"
    )
    bound = [origin, interval_ms, *params, origin, origin + interval_ms * buckets]
    for bucket, count in connection.execute(sql, bound):
        counts[int(bucket)] = int(count)
    return counts


def filter_options(connection: sqlite3.Connection) -> FilterOptions:
    def distinct(sql: str) -> list[str]:
        return [value for (value,) in connection.execute(sql, (MAX_FILTER_OPTIONS,))]

    options = {
        name: distinct(f"SELECT DISTINCT {column} FROM events ORDER BY {column} LIMIT ?")
        for name, column in OPTION_COLUMNS.items()
    }
    options["tags"] = distinct("SELECT DISTINCT tag FROM event_tags ORDER BY tag LIMIT ?")
    return FilterOptions(**options)
