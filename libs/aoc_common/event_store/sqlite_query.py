"""Event reads of the embedded store: `EventFilters` as SQL, and the statements that page, count,
facet and bucket events. Functions of a connection, run on the store's thread.

Every read picks one of three plans (`plan_for`):
- **by search index**: when the words, filter values and actors asked for are rare together (at
  most COMMON_LOOKUP_ROWS events carry them all, see `sqlite_schema.value_token`), FTS5 lists
  those events and each row is checked; a page sorts the few matches.
- **by tag**: when a required tag is that rare.
- **by time**: otherwise, walk `events_by_time` newest (or oldest) first, testing each entry; a
  page of common events is found after a few entries, and the walk never reads the table.
Whatever the plan, every filter is also tested on the row itself, so a shared token or a shortcut
can add candidates but never change an answer.

User input only ever becomes a bound parameter. The actor filter is `instr` on lowercased actor
names (of `event_actors`), not LIKE, so `%` and `_` are plain characters; search tokens hold only
letters and digits (see `query_tokens`) and value tokens only "§", letters and hex digits, so
quoting them makes each a literal FTS5 term.
"""

from __future__ import annotations

import dataclasses
import gc
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Literal

import orjson

from aoc_common.event_store.base import MAX_FILTER_OPTIONS
from aoc_common.event_store.sqlite_schema import value_token
from aoc_common.event_store.sqlite_word_cache import WordCache, WordMap
from aoc_common.query import (
    VALUE_FILTERS,
    Cursor,
    EventFilters,
    FacetCounts,
    FilterOptions,
    MatchCount,
    Order,
    timestamp_ms,
    top_counts,
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
OPTION_FIELDS = {"services": "service", "operations": "operation", "results": "result"}
OPTION_FIELDS |= {"sources": "source"}
ORDER_BY = {
    "newest": "ORDER BY timestamp_ms DESC, id DESC",
    "oldest": "ORDER BY timestamp_ms ASC, id ASC",
}
AFTER_CURSOR = {"newest": "(timestamp_ms, id) < (?, ?)", "oldest": "(timestamp_ms, id) > (?, ?)"}

ACTORS_CONTAINING = "SELECT actor_display FROM event_actors WHERE instr(actor_lower, ?) > 0"
# An actor filter matching at most this many actors also looks events up by their tokens.
MAX_ACTOR_TOKENS = 50

# A lookup matching more events than this is "common": a page of them is found sooner by walking
# the time index than by collecting and sorting every match (which, for a word in a third of a
# million events, takes hundreds of milliseconds). From bench/api.py.
COMMON_LOOKUP_ROWS = 2_000
# Facets read every match of a lookup finding at most this many events (and no more than the
# sample) through the search index, a row each, rather than walk the time index for them: an
# operation in 0.7 % of a million events took 116 ms by the walk. From bench/api.py.
RARE_FACET_ROWS = 10_000
# A facet sample walking the time index looks at no more than the newest
# max(FACET_WALK_PER_SAMPLE x sample, FACET_WALK_MIN) entries of the filters' time range, and counts
# the matches found there: matches in 5 % of events or more fill the sample, sparser ones give a
# smaller one (`counted` says how many). Finding the newest 10,000 of an operation in 1.3 % of a
# million events walked 750,000 entries (116 ms of CPU); bounded, 100,000 entries take ~12 ms.
FACET_WALK_PER_SAMPLE = 20
FACET_WALK_MIN = 100_000
# A walk tests the search words against a byte per event (`WordTest`): of the events they find,
# or, when they may find more than this share of the events, of the events they do not find, so
# that the map never lists more than about half the store (1M events: "contoso", in 99.6 % of
# them, is mapped by its 4,054 absences in 48 ms where its hits took 174 ms; "update", in 20 %,
# by its hits in 25 ms, where its absences took 85 ms).
ABSENT_MAP_SHARE = 0.5
# Rows fetched at a time when every match is counted.
FETCH_ROWS = 10_000
# `tag_counts` reads the whole of `event_tags` while it holds at most this many rows per event
# counted, and looks tags up by event beyond.
TAG_SCAN_ROWS_PER_EVENT = 4

SEARCH_HITS = "SELECT rowid FROM event_search WHERE event_search MATCH ?"

Driver = Literal["search", "tag", "time"]


@dataclass(frozen=True)
class Plan:
    """How to read the events of one set of filters."""

    driver: Driver
    # The FTS5 expression of everything the search index can look up (words, filter values,
    # few enough actors), or "" when there is nothing to look up.
    lookup: str
    # False when the filters match nothing whatever the plan (an actor part no actor has).
    possible: bool = True
    # The FTS5 expression of the search words alone ("" without words).
    words: str = ""
    # The map of the events the words find, when the plan had to read them (a prefix term, see
    # `plan_for`).
    word_map: WordMap | None = dataclasses.field(default=None, compare=False, repr=False)


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


def _quoted(token: str) -> str:
    return f'"{token}"'


# A search word is a prefix. FTS5 reads a prefix term by merging the list of every indexed term
# starting with it, which costs more than an OR of those terms: 9.2 ms against 5.5 ms (the
# vocabulary look-up included) for a word in 8 % of a million events, CPU time, same run. Words
# starting more terms than this stay prefix terms.
MAX_PREFIX_TERMS = 16
SEARCH_TERMS = "temp.aoc_search_terms"


def words_match(
    connection: sqlite3.Connection, filters: EventFilters
) -> tuple[str, int | None, bool] | None:
    """The FTS5 expression of the search words, all required: each the OR of the indexed terms it
    starts (or a prefix term when it starts many), None when one starts no term (no event can
    match); at most how many events it finds (the fewest over the words of their terms' event
    counts added up; None when a word stays a prefix term); and whether that is exactly how many
    (one word starting one term)."""
    parts = []
    at_most: int | None = None
    bounded = True
    for token in filters.search_tokens:
        terms = terms_starting(connection, token)
        if terms is None:
            parts.append(f"{_quoted(token)}*")
            bounded = False
        elif not terms:
            return None
        else:
            parts.append("(" + " OR ".join(_quoted(term) for term, _ in terms) + ")")
            events = sum(count for _, count in terms)
            at_most = events if at_most is None else min(at_most, events)
    exact = bounded and len(parts) == 1 and " OR " not in parts[0]
    return " AND ".join(parts), at_most if bounded else None, exact


def word_cache(connection: sqlite3.Connection) -> WordCache | None:
    """The store connection's cache of terms and word maps, brought to this read's snapshot (None
    on a plain connection)."""
    cache: WordCache | None = getattr(connection, "word_cache", None)
    if cache is not None:
        cache.sync(connection)
    return cache


def terms_starting(connection: sqlite3.Connection, prefix: str) -> list[tuple[str, int]] | None:
    """The indexed terms starting with `prefix` and how many events hold each (read from the
    fts5vocab view of the index, in this read's snapshot, or kept from an earlier answer), or None
    when there are more than MAX_PREFIX_TERMS. Terms sort by their UTF-8 bytes, which is code
    point order, so they are the terms from `prefix` up to (excluded) the prefix with its last
    character incremented."""
    last = ord(prefix[-1])
    if last >= 0x10FFFF or 0xD7FF <= last <= 0xDFFF:
        return None
    cache = word_cache(connection)
    if cache is not None:
        known, kept = cache.terms(prefix)
        if known:
            return kept
    upper = prefix[:-1] + chr(last + 1)
    connection.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {SEARCH_TERMS} "
        "USING fts5vocab(main, 'event_search', 'row')"
    )
    terms = connection.execute(
        f"SELECT term, doc FROM {SEARCH_TERMS} WHERE term >= ? AND term < ? LIMIT ?",
        (prefix, upper, MAX_PREFIX_TERMS + 1),
    ).fetchall()
    found = None if len(terms) > MAX_PREFIX_TERMS else terms
    if cache is not None:
        cache.remember_terms(prefix, found, MAX_PREFIX_TERMS)
    return found


@dataclass(frozen=True)
class Lookup:
    """What the search index can look up for a set of filters."""

    # The FTS5 expression of the words, wanted values and (few) actors ("" when none).
    expression: str
    # The FTS5 expression of the words alone ("" without words).
    words: str
    # False when no event can match (a word starting no term, an actor part no actor has).
    possible: bool = True
    # At most how many events the words find (see `words_match`), None when not known.
    words_at_most: int | None = None
    # Whether `words_at_most` is exactly how many.
    words_exact: bool = False
    # The search tokens, as the word cache knows their map (`search_key`).
    tokens: tuple[str, ...] = ()


NOTHING = Lookup("", "", possible=False)


def lookup_expression(connection: sqlite3.Connection, filters: EventFilters) -> Lookup:
    """The FTS5 expressions of the filters' words, wanted values and (few) actors."""
    words = ""
    words_at_most: int | None = None
    words_exact = False
    if filters.search_tokens:
        found = words_match(connection, filters)
        if found is None:
            return NOTHING
        words, words_at_most, words_exact = found
    parts = [words] if words else []
    for field in VALUE_FILTERS:
        wanted = filters.values_of(field)
        if wanted:
            parts.append(
                "(" + " OR ".join(_quoted(value_token(field, value)) for value in wanted) + ")"
            )
    if filters.actor:
        actors = [
            actor
            for (actor,) in connection.execute(
                f"{ACTORS_CONTAINING} LIMIT {MAX_ACTOR_TOKENS + 1}", (filters.actor.lower(),)
            )
        ]
        if not actors:
            return NOTHING
        if len(actors) <= MAX_ACTOR_TOKENS:
            tokens = (_quoted(value_token("actor_display", actor)) for actor in actors)
            parts.append("(" + " OR ".join(tokens) + ")")
    return Lookup(
        " AND ".join(parts),
        words,
        words_at_most=words_at_most,
        words_exact=words_exact,
        tokens=search_key(filters),
    )


def search_key(filters: EventFilters) -> tuple[str, ...]:
    """The filters' search tokens in one order: the events they find do not depend on it."""
    return tuple(sorted(set(filters.search_tokens)))


def _at_most(connection: sqlite3.Connection, lookup: str, value: Any, bound: int) -> int:
    sql = f"SELECT count(*) FROM ({lookup} LIMIT {bound + 1})"
    return int(connection.execute(sql, (value,)).fetchone()[0])


def plan_for(
    connection: sqlite3.Connection,
    filters: EventFilters,
    *,
    rare: int | None = None,
    lookup: Lookup | None = None,
) -> Plan:
    """The cheapest way to the first matches in time order (see the module docstring): a lookup
    finding at most `rare` events (COMMON_LOOKUP_ROWS unless given) drives the read. `lookup`:
    the filters' `lookup_expression`, when the caller has it already.

    Words alone with a prefix term are mapped here, once (`Plan.word_map`): FTS5 merges the
    lists of every term the prefix starts before it lists the first hit, in every statement, so
    counting the first `rare` of them costs as much as reading them all."""
    rare = COMMON_LOOKUP_ROWS if rare is None else rare
    found = lookup or lookup_expression(connection, filters)
    if not found.possible:
        return Plan("time", "", possible=False)
    lookup, words = found.expression, found.words
    word_map = None
    if lookup and lookup == words and found.words_at_most is None:
        word_map = words_map(connection, words, tokens=found.tokens)
        if word_map.hits is None and word_map.at_least <= rare:
            rare_words = _at_most(connection, SEARCH_HITS, words, rare) <= rare
        else:
            rare_words = word_map.hits is not None and word_map.hits <= rare
        if rare_words:
            return Plan("search", lookup, words=words)
    elif lookup and _at_most(connection, SEARCH_HITS, lookup, rare) <= rare:
        return Plan("search", lookup, words=words)
    tag_lookup = "SELECT event_seq FROM event_tags WHERE tag = ?"
    for tag in filters.tags:
        if _at_most(connection, tag_lookup, tag, rare) <= rare:
            return Plan("tag", lookup, words=words, word_map=word_map)
    return Plan("time", lookup, words=words, word_map=word_map)


def selection(
    filters: EventFilters,
    plan: Plan,
    columns: str,
    *,
    cursor: Cursor | None = None,
    words: WordTest | None = None,
    not_before: tuple[int, str] | None = None,
) -> tuple[str, list[Any]]:
    """`SELECT columns FROM ... WHERE ...` of the events matching `filters` after `cursor`, read
    the way `plan` says; ORDER BY and LIMIT are the caller's. Off the search plan, the search
    words are tested with `words` (`words_test_for`). `not_before`: the (time, id) of the oldest
    event to look at (see `walk_bound`)."""
    clauses: list[str] = []
    params: list[Any] = []
    if plan.driver == "search":
        source = "event_search CROSS JOIN events ON events.seq = event_search.rowid"
        clauses.append("event_search MATCH ?")
        params.append(plan.lookup)
    else:
        source = "events"
        if filters.search_tokens:
            if words is None:
                raise ValueError("a read off the search index tests its words with a WordTest")
            clauses.append(words.clause)
            params.append(words.param)
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
        clauses.append(f"actor_display IN ({ACTORS_CONTAINING})")
        params.append(filters.actor.lower())
    within, bounds = time_range(filters)
    clauses.extend(within)
    params.extend(bounds)
    member = "seq IN" if plan.driver == "tag" else "+seq IN"
    for tag in filters.tags:
        clauses.append(f"{member} (SELECT event_seq FROM event_tags WHERE tag = ?)")
        params.append(tag)
    if filters.exclude_tags:
        clauses.append(
            "seq NOT IN (SELECT event_seq FROM event_tags "
            f"WHERE tag IN ({_marks(filters.exclude_tags)}))"
        )
        params.extend(filters.exclude_tags)
    if cursor is not None:
        clauses.append(AFTER_CURSOR[cursor.order])
        params.extend([cursor.timestamp_ms, cursor.id])
    if not_before is not None:
        clauses.append("(timestamp_ms, id) >= (?, ?)")
        params.extend(not_before)
    where = " AND ".join(clauses) or "1"
    return f"SELECT {columns} FROM {source} WHERE {where}", params


def time_range(filters: EventFilters) -> tuple[list[str], list[int]]:
    """The clauses and bounds of the filters' start and end (both inclusive)."""
    clauses: list[str] = []
    bounds: list[int] = []
    if filters.start is not None:
        clauses.append("timestamp_ms >= ?")
        bounds.append(timestamp_ms(filters.start))
    if filters.end is not None:
        clauses.append("timestamp_ms <= ?")
        bounds.append(timestamp_ms(filters.end))
    return clauses, bounds


def page_docs(
    connection: sqlite3.Connection,
    filters: EventFilters,
    cursor: Cursor | None,
    order: Order,
    limit: int,
) -> list[str]:
    """The JSON of up to `limit` matching events after the cursor, in `order`."""
    lookup = lookup_expression(connection, filters)
    plan = plan_for(connection, filters, lookup=lookup)
    if not plan.possible:
        return []
    words = page_words_test(connection, filters, plan, lookup, limit)
    sql, params = selection(filters, plan, "events.seq", cursor=cursor, words=words)
    rows = connection.execute(f"{sql} {ORDER_BY[order]} LIMIT ?", [*params, limit]).fetchall()
    return docs_of(connection, [seq for (seq,) in rows])


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
    """Count at most limit + 1 matches (the extra one only says there are more).

    When the search index alone decides every filter (`decided_by_index`), its hits are counted
    without reading a row: 6,566 events of an operation cost 0.3 ms instead of 35 ms of row
    checks. Otherwise unordered, so the search index may drive even when its matches are common:
    it lists them in storage order and counting stops at the bound. Only a time range keeps the
    time plan, whose walk the range bounds."""
    lookup = lookup_expression(connection, filters)
    if not lookup.possible:
        return MatchCount(value=0, exact=True)
    kept = None
    if lookup.tokens and lookup.expression == lookup.words:  # words alone
        # A prefix term costs as much to count as to map (FTS5 merges its terms' lists either
        # way), and the map then serves the page, facets and histogram asked with the count.
        prefix = lookup.words_at_most is None
        kept = words_map(connection, lookup.words, tokens=lookup.tokens) if prefix else None
        kept = kept or kept_map(connection, lookup)
    if kept is not None and kept.hits is not None and decided_by_index(connection, filters):
        found = kept.hits
    elif lookup.expression and decided_by_index(connection, filters):
        found = _at_most(connection, SEARCH_HITS, lookup.expression, limit)
    else:
        plan = plan_for(connection, filters, lookup=lookup)
        bounded_in_time = filters.start is not None or filters.end is not None
        if plan.lookup and plan.driver == "time" and not bounded_in_time:
            plan = Plan("search", plan.lookup, words=plan.words)
        words = words_test_for(connection, plan, lookup)
        sql, params = selection(filters, plan, "1", words=words)
        found = int(
            connection.execute(
                f"SELECT count(*) FROM ({sql} LIMIT ?)", [*params, limit + 1]
            ).fetchone()[0]
        )
    if found > limit:
        return MatchCount(value=limit, exact=False)
    return MatchCount(value=found, exact=True)


# Filters the search index can decide alone: its words, and wanted values of fields whose every
# known value is listed (`event_values`, `event_actors`), so that a shared token can be ruled out.
INDEX_DECIDED = {"search", "actor", "service", "operation", "result", "source", "actor_display"}
# Fields with more known values than this are checked on the rows instead (the token census
# reads every value).
MAX_CENSUS_VALUES = 20_000


def decided_by_index(connection: sqlite3.Connection, filters: EventFilters) -> bool:
    """Whether the events whose tokens match `lookup_expression` are exactly the matches.

    Words are decided by the index whatever the plan. A value token is a CRC-32, so two values
    can share one: a wanted value's token decides only when no other known value of its field has
    it. Values are recorded with every event and never removed, so the known values are a
    superset of the stored ones, and "no other value shares it" stays true of the stored events.
    The actor filter (a substring) decides when it names at most MAX_ACTOR_TOKENS actors (all
    looked up by token) and no actor outside them shares one of their tokens."""
    for name in EventFilters.model_fields:
        if name not in INDEX_DECIDED and getattr(filters, name):
            return False
    for field in ("service", "operation", "result", "source", "actor_display"):
        wanted = filters.values_of(field)
        if wanted and _token_shared(connection, field, set(wanted)):
            return False
    if filters.actor:
        part = filters.actor.lower()
        actors = {
            actor
            for (actor,) in connection.execute(
                f"{ACTORS_CONTAINING} LIMIT {MAX_ACTOR_TOKENS + 1}", (part,)
            )
        }
        if len(actors) > MAX_ACTOR_TOKENS or _token_shared(connection, "actor_display", actors):
            return False
    return True


def _token_shared(connection: sqlite3.Connection, field: str, wanted: set[str]) -> bool:
    """Whether a known value of `field` outside `wanted` has the token of a wanted one (or the
    field has too many values to tell cheaply)."""
    if field == "actor_display":
        known = "SELECT actor_display FROM event_actors LIMIT ?"
        params: tuple[Any, ...] = (MAX_CENSUS_VALUES + 1,)
    else:
        known = "SELECT value FROM event_values WHERE field = ? LIMIT ?"
        params = (field, MAX_CENSUS_VALUES + 1)
    values = [value for (value,) in connection.execute(known, params)]
    if len(values) > MAX_CENSUS_VALUES:
        return True
    tokens = {value_token(field, value) for value in wanted}
    return any(value not in wanted and value_token(field, value) in tokens for value in values)


def facet_counts(
    connection: sqlite3.Connection,
    filters: EventFilters,
    fields: Sequence[str],
    top: int,
    sample: int | None,
) -> FacetCounts:
    """Count the values of each field over the newest `sample` matches (all when None).

    Which matches: when the search index or a tag finds at most RARE_FACET_ROWS candidates, every
    match is read as the index lists it (no walk of the time index: a 0.7 % operation took 116 ms
    by the walk); when there are more of them than the sample, Python keeps the newest `sample`
    by their times (`newest_rows`), not SQLite's ORDER BY, whose sorter cost more than reading
    every row (6,566 candidates of an operation: 39-42 ms sorted for the newest 5,000 against 31
    read whole, same run). Otherwise the time index is walked newest first for sample + 1
    matches (the extra one only says whether the sample is all of them), looking at no more than
    the newest entries `walk_bound` allows: sparse matches then give a smaller sample
    (`counted`), never a slower answer.

    How: SQLite hands back one row per counted event, its few-valued fields as one JSON array
    (a few dozen distinct arrays, decoded once each) and its actor, and Python counts them. SQL
    GROUP BYs sort the sample once per field: 20.7 ms against 12.3 ms for the newest 10,000 of
    a million events (CPU time, same run)."""
    rare = RARE_FACET_ROWS
    lookup = lookup_expression(connection, filters)
    if not lookup.possible:
        return FacetCounts(facets={field: [] for field in fields}, counted=0, complete=True)
    plan = plan_for(connection, filters, rare=rare, lookup=lookup)
    words = words_test_for(connection, plan, lookup)
    grouped = list(dict.fromkeys(FACET_COLUMNS[f] for f in fields if f not in ("tags", "actor")))
    combo = f"json_array({', '.join(grouped)})" if grouped else "NULL"
    bound = None
    if sample is not None and plan.driver == "time":
        bound = walk_bound(connection, filters, max(FACET_WALK_PER_SAMPLE * sample, FACET_WALK_MIN))
    # A lookup's candidates may outnumber the sample: then their times pick the newest.
    timed = sample is not None and plan.driver != "time" and sample < rare
    chosen, params = selection(
        filters,
        plan,
        f"events.seq, events.actor_display, {combo}" + (", events.timestamp_ms" if timed else ""),
        words=words,
        not_before=bound,
    )
    if sample is not None and plan.driver == "time":
        chosen = f"{chosen} {ORDER_BY['newest']} LIMIT ?"
        params.append(sample + 1)
    with collector_paused():
        seqs, actors, combos, more = _counted_rows(connection, chosen, params, sample, timed=timed)
    more = more or bound is not None
    per_column: dict[str, Counter[str]] = {column: Counter() for column in grouped}
    for values, count in combos.items():
        if values is None:
            continue
        for column, value in zip(grouped, orjson.loads(values), strict=True):
            per_column[column][value] += count
    per_column["actor_display"] = actors
    tags = tag_counts(connection, seqs) if "tags" in fields else Counter()
    facets = {
        field: top_counts(tags if field == "tags" else per_column[FACET_COLUMNS[field]], top)
        for field in fields
    }
    return FacetCounts(facets=facets, counted=len(seqs), complete=not more)


def walk_bound(
    connection: sqlite3.Connection, filters: EventFilters, entries: int
) -> tuple[int, str] | None:
    """The (time, id) of the `entries`-th newest event in the filters' time range when older ones
    follow it (a walk from the newest stops there), else None (the walk sees the whole range).
    SQLite skips an OFFSET's index entries without reading them: 150,000 in 1.4 ms."""
    clauses, params = time_range(filters)
    where = " AND ".join(clauses) or "1"
    rows = connection.execute(
        f"SELECT timestamp_ms, id FROM events WHERE {where} {ORDER_BY['newest']} LIMIT 2 OFFSET ?",
        [*params, entries - 1],
    ).fetchall()
    if len(rows) < 2:
        return None
    return int(rows[0][0]), str(rows[0][1])


def _counted_rows(
    connection: sqlite3.Connection,
    chosen: str,
    params: list[Any],
    sample: int | None,
    *,
    timed: bool = False,
) -> tuple[list[int], Counter[str], Counter[str], bool]:
    """The seqs, actor counts and value-array counts of the counted rows, and whether more
    matched than were counted. Without a sample, `chosen` selects every match (streamed); with
    one, at most sample + 1 rows newest first, or (`timed`) every candidate of a lookup with its
    time last, of which the newest `sample` are counted."""
    cursor = connection.execute(chosen, params)
    batches: Iterable[list[Any]]
    more = False
    if sample is None:
        batches = iter(partial(cursor.fetchmany, FETCH_ROWS), [])
    else:
        rows = cursor.fetchall()
        more = len(rows) > sample
        if more and timed:
            rows = newest_rows(connection, rows, sample)
        batches = [[row[:3] for row in rows] if timed else rows[:sample]]
    combos: Counter[str] = Counter()
    actors: Counter[str] = Counter()
    seqs: list[int] = []
    for rows in batches:
        if rows:
            batch_seqs, batch_actors, batch_combos = zip(*rows, strict=True)
            seqs.extend(batch_seqs)
            actors.update(batch_actors)
            combos.update(batch_combos)
    return seqs, actors, combos, more


def newest_rows(connection: sqlite3.Connection, rows: list[Any], sample: int) -> list[Any]:
    """The `sample` rows (seq first, time last) that come first in the store's newest-first
    order, (time, id) descending, in no particular order: their times sorted alone, and ids read
    only for the rows sharing the time at the cut, of which the sample may take some and not
    others (ids compare as SQLite's BINARY collation does: UTF-8 bytes sort in code point order,
    as Python's strings do)."""
    cut = sorted((row[-1] for row in rows), reverse=True)[sample - 1]
    newer = [row for row in rows if row[-1] > cut]
    tied = [row for row in rows if row[-1] == cut]
    room = sample - len(newer)
    if len(tied) > room:
        tied_seqs = [row[0] for row in tied]
        ids = dict(
            connection.execute(
                f"SELECT seq, id FROM events WHERE seq IN ({_marks(tied_seqs)})", tied_seqs
            ).fetchall()
        )
        tied.sort(key=lambda row: ids[row[0]], reverse=True)
    return newer + tied[:room]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a sample's rows are read: 10,000 row tuples
    (which can form no cycle) set off collections of the whole heap that doubled the p95 of a
    facet (13 -> 29 ms CPU for the newest 10,000 of a million events, same run). Restored as it
    was; another thread pausing at the same time at worst lets a collection run."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class WordTest:
    """The search words as a test of each entry a walk reads: a byte per seq, 1 for the events the
    words find (or, when `absent`, for the events they do not find), made once per answer.

    Against `seq IN (SELECT rowid ... MATCH ?)` SQLite builds an index of every hit in each
    statement (a week's histogram of "contoso", one statement per interval: 6.1 s; its page:
    262 ms); probing the search index per entry costs ~150 µs. The builtin `substr` of a blob is
    direct access; a seq past the end of the map reads as an empty blob, which is not the byte 1:
    an event the map does not reach is a miss of a map of hits and a hit of a map of absences."""

    flags: bytes = b""
    absent: bool = False
    # The words' FTS5 expression when each entry is looked up in the search index instead, which
    # costs more per entry and nothing up front (`page_words_test`).
    probe: str = ""

    @property
    def clause(self) -> str:
        if self.probe:
            return "EXISTS (SELECT 1 FROM event_search WHERE event_search MATCH ? AND rowid = seq)"
        return f"substr(?, seq + 1, 1) {'<>' if self.absent else '='} x'01'"

    @property
    def param(self) -> bytes | str:
        return self.probe or self.flags


# What a page's walk pays to test one word (one indexed term) on the entries it reads, at 1M
# events (bench/api.py, session 7): a look-up in the search index per entry, or a map made first
# of its hits (per hit) or of its absences (a fixed part, reading every event's token, and per
# absence). A page of "contoso" (99.6 % of events) probes 52 entries (~8 ms) where its map of
# absences took 48 ms; the page's first and last events (a histogram's edges) probe one or two.
PROBE_MS = 0.15
HIT_MAP_MS = 0.00012
ABSENCE_MAP_MS = (45.0, 0.0001)


def page_words_test(
    connection: sqlite3.Connection, filters: EventFilters, plan: Plan, lookup: Lookup, limit: int
) -> WordTest | None:
    """How a page tests its search words: like any walk (`words_test_for`), except that one word
    finding most events, searched for alone (no other filter to pass over entries the estimate
    does not count), is looked up per entry when the ~limit x events / hits entries the page
    walks cost less to probe than a map costs to make."""
    hits = lookup.words_at_most
    used = {name for name in EventFilters.model_fields if getattr(filters, name)}
    alone = used <= {"search", "start", "end"}
    kept = kept_map(connection, lookup) is not None
    if plan.driver == "time" and lookup.words_exact and hits and alone and not kept:
        (newest,) = connection.execute("SELECT max(seq) FROM events").fetchone()
        events = max(newest or 0, hits)
        if hits <= events * ABSENT_MAP_SHARE:
            map_ms = HIT_MAP_MS * hits
        else:
            map_ms = ABSENCE_MAP_MS[0] + ABSENCE_MAP_MS[1] * (events - hits)
        if limit * events / hits * PROBE_MS < map_ms:
            return WordTest(probe=plan.words)
    return words_test_for(connection, plan, lookup)


def words_test_for(connection: sqlite3.Connection, plan: Plan, lookup: Lookup) -> WordTest | None:
    """How a read off the search index tests the search words (None on the search plan, which
    looks them up, or without words)."""
    if plan.driver == "search" or not plan.words:
        return None
    word_map = plan.word_map or words_map(
        connection,
        plan.words,
        tokens=lookup.tokens,
        words_at_most=lookup.words_at_most,
        exact=lookup.words_exact,
    )
    return WordTest(word_map.flags, word_map.absent)


def kept_map(connection: sqlite3.Connection, lookup: Lookup) -> WordMap | None:
    """The map of the lookup's words an earlier answer of this snapshot made, if kept."""
    cache = word_cache(connection) if lookup.tokens else None
    return cache.word_map(lookup.tokens) if cache is not None else None


def word_test_of(
    connection: sqlite3.Connection,
    words: str,
    *,
    words_at_most: int | None = None,
    exact: bool = False,
) -> WordTest:
    """The `WordTest` of an FTS5 expression of search words (`words_map`, not kept)."""
    word_map = words_map(connection, words, words_at_most=words_at_most, exact=exact)
    return WordTest(word_map.flags, word_map.absent)


def words_map(
    connection: sqlite3.Connection,
    words: str,
    *,
    tokens: tuple[str, ...] = (),
    words_at_most: int | None = None,
    exact: bool = False,
) -> WordMap:
    """The map of an FTS5 expression of search words: of the events they find, unless they may
    find more than ABSENT_MAP_SHARE of the events (`words_at_most`, from the terms' counts;
    counted when it is only a bound), then of the events they do not find. Words with a prefix
    term (`words_at_most` None) are mapped by their hits, read once: FTS5 merges the lists of
    every term a prefix starts in each statement that reads it ("user", starting 2,000 actor
    names among others at 1M events, ~280 ms a statement). Either list is read as one JSON array,
    which orjson turns into ints in C (splitting a comma-separated list and calling int() cost
    more than reading the index). With `tokens` (the words as the query gave them), the map is
    kept by the connection's word cache for later answers, and taken from it when there."""
    cache = word_cache(connection) if tokens else None
    kept = cache.word_map(tokens) if cache is not None else None
    if kept is not None:
        return kept
    made = _made_map(connection, words, words_at_most, exact)
    if cache is not None:
        cache.remember_map(tokens, made)
    return made


def _made_map(
    connection: sqlite3.Connection, words: str, words_at_most: int | None, exact: bool
) -> WordMap:
    if words_at_most is not None:
        (newest,) = connection.execute("SELECT max(seq) FROM events").fetchone()
        half = int((newest or 0) * ABSENT_MAP_SHARE)
        dense = words_at_most > half
        if dense and not exact and _at_most(connection, SEARCH_HITS, words, half) <= half:
            dense = False
        everything = every_event(connection) if dense else ""
        if everything:
            absences = hits_of(connection, f"{everything} NOT ({words})")
            hits = words_at_most if exact else None
            return WordMap(byte_map(absences), True, hits, half + 1)
    found = hits_of(connection, words)
    return WordMap(byte_map(found), False, len(found), len(found))


def hits_of(connection: sqlite3.Connection, expression: str) -> list[int]:
    """The seqs of the events an FTS5 expression finds."""
    sql = "SELECT json_group_array(rowid) FROM event_search WHERE event_search MATCH ?"
    (hits,) = connection.execute(sql, (expression,)).fetchone()
    seqs: list[int] = orjson.loads(hits)
    return seqs


# Fields every event has one value token of, whose known values are all listed in `event_values`.
EVERY_EVENT_FIELDS = ("result", "source", "service")


def every_event(connection: sqlite3.Connection) -> str:
    """An FTS5 expression every stored event matches: the OR of the value tokens of every known
    value of the field with the fewest (`event_values` keeps every value ever stored); "" when
    no value is known."""
    fewest: list[tuple[str, str]] | None = None
    for field in EVERY_EVENT_FIELDS:
        values = [
            (field, value)
            for (value,) in connection.execute(
                "SELECT value FROM event_values WHERE field = ?", (field,)
            )
        ]
        if values and (fewest is None or len(values) < len(fewest)):
            fewest = values
    tokens = sorted({value_token(field, value) for field, value in fewest or []})
    return "(" + " OR ".join(_quoted(token) for token in tokens) + ")" if tokens else ""


def byte_map(seqs: list[int]) -> bytes:
    """One byte per seq up to the largest of `seqs`, 1 for each of them (a plain loop: CPython
    specialises a bytearray store; `deque(map(found.__setitem__, ...))` took 4.8 ms against 2.6
    for 80,000 seqs). Never empty: SQLite's `substr` of an empty blob is NULL, not a blob."""
    if not seqs:
        return b"\x00"
    found = bytearray(max(seqs) + 1)
    for seq in seqs:
        found[seq] = 1
    return bytes(found)


def tag_counts(connection: sqlite3.Connection, seqs: list[int]) -> Counter[str]:
    """How many of these events carry each tag. Few tagged events (the usual case): one pass over
    `event_tags`, each row tested against a byte map of the events (one byte per seq, a builtin
    `substr` per row); many: the events' tags looked up by event, a chunk of seqs at a time."""
    counts: Counter[str] = Counter()
    if not seqs:
        return counts
    (tagged,) = connection.execute("SELECT count(*) FROM event_tags").fetchone()
    if tagged <= TAG_SCAN_ROWS_PER_EVENT * len(seqs):
        rows = connection.execute(
            "SELECT tag, count(*) FROM event_tags WHERE substr(?, event_seq + 1, 1) = x'01' "
            "GROUP BY tag",
            (byte_map(seqs),),
        )
        counts.update(dict(rows))
        return counts
    for start in range(0, len(seqs), FETCH_ROWS):
        chunk = orjson.dumps(seqs[start : start + FETCH_ROWS]).decode()
        rows = connection.execute(
            "SELECT tag, count(*) FROM event_tags "
            "WHERE event_seq IN (SELECT value FROM json_each(?)) GROUP BY tag",
            (chunk,),
        )
        counts.update(dict(rows))
    return counts


def count_by_interval(
    connection: sqlite3.Connection,
    filters: EventFilters,
    start: datetime,
    interval_ms: int,
    buckets: int,
) -> list[int]:
    """Matches per interval. Walking the time index, one range count per interval, all in one
    statement (the index is in time order, so no row is sorted; a GROUP BY sorted a week's 78,000
    events for 29 ms where this takes 8 ms); the few rows of a rare lookup are grouped instead."""
    lookup = lookup_expression(connection, filters)
    plan = plan_for(connection, filters, lookup=lookup)
    if not plan.possible:
        return [0] * buckets
    origin = timestamp_ms(start)
    if plan.driver == "time" and lookup_beats_walk(
        connection, filters, lookup, plan, origin, origin + interval_ms * buckets
    ):
        plan = Plan("search", plan.lookup, words=plan.words)
    words = words_test_for(connection, plan, lookup)
    absent = absent_seqs(connection, words) if plan.driver == "time" else None
    if absent is not None:
        return counts_less_absences(connection, filters, absent, start, interval_ms, buckets)
    if plan.driver == "time":
        walked = walked_counts(connection, filters, plan, words, origin, interval_ms, buckets)
        return [row[0] for row in walked]
    chosen, params = selection(filters, plan, "timestamp_ms", words=words)
    return grouped_counts(connection, chosen, params, origin, interval_ms, buckets)


def grouped_counts(
    connection: sqlite3.Connection,
    chosen: str,
    params: list[Any],
    origin: int,
    interval_ms: int,
    buckets: int,
) -> list[int]:
    """Per interval from `origin`, the rows `chosen` (a `selection` of the time) selects, grouped
    by interval: for a few rows, where a walk of the time index would read many more."""
    counts = [0] * buckets
    sql = (
        f"SELECT (timestamp_ms - ?) / ?, count(*) FROM ({chosen} "
        "AND timestamp_ms >= ? AND timestamp_ms < ?) GROUP BY 1"
    )
    bound = [origin, interval_ms, *params, origin, origin + interval_ms * buckets]
    for bucket, count in connection.execute(sql, bound):
        counts[int(bucket)] = int(count)
    return counts


# A histogram of search words that miss at most this many seqs counts the other filters' histogram
# less those few (`counts_less_absences`).
MAX_ABSENT_SEQS = 50_000


def absent_seqs(connection: sqlite3.Connection, words: WordTest | None) -> list[int] | None:
    """The seqs up to the newest that the words do not find, when the map says so and there are
    at most MAX_ABSENT_SEQS of them (seqs of no event, such as purged ones, included: they match
    no row); None otherwise. A map of absences lists them; a map of hits (a prefix term's) by its
    zero bytes and the seqs past its end."""
    if words is None or words.probe:
        return None
    if words.absent:
        return [found.start() for found in re.finditer(b"\x01", words.flags)]
    (newest,) = connection.execute("SELECT max(seq) FROM events").fetchone()
    newest = newest or 0
    past_end = max(0, newest + 1 - len(words.flags))
    missing = words.flags.count(0, 1) + past_end
    if missing > MAX_ABSENT_SEQS or missing * 2 > newest:
        return None
    zeros = [found.start() for found in re.finditer(b"\x00", words.flags) if found.start()]
    return zeros + list(range(len(words.flags), newest + 1))


def counts_less_absences(
    connection: sqlite3.Connection,
    filters: EventFilters,
    seqs: list[int],
    start: datetime,
    interval_ms: int,
    buckets: int,
) -> list[int]:
    """`count_by_interval` of search words that find most events, from the seqs of the events
    they do not find (`absent_seqs`): the histogram of the other filters (a walk testing no word:
    1M events, every event's 90 days, 78 ms against 154 testing the map on each entry,
    bench/api.py session 8), less the matches of the other filters among those few events, read
    by seq."""
    others = filters.model_copy(update={"search": None})
    counts = count_by_interval(connection, others, start, interval_ms, buckets)
    if not seqs:
        return counts
    chosen, params = selection(others, Plan("time", ""), "timestamp_ms")
    missed = grouped_counts(
        connection,
        f"{chosen} AND seq IN (SELECT value FROM json_each(?))",
        [*params, orjson.dumps(seqs).decode()],
        timestamp_ms(start),
        interval_ms,
        buckets,
    )
    return [total - less for total, less in zip(counts, missed, strict=True)]


# A histogram counts every match in its range. Read through the search index, a match costs
# 0.7-0.9 µs (its row read by seq, then grouped); walking the time index costs 0.10-0.15 µs per entry
# in the range, match or not (less for a value filter than for search words). 1M events, every
# event's 90 days, store calls (session 8): `mailbox` (8 %) 71 ms against 145, `reset password`
# (5 %) 54 against 146, an operation in 1.3 % 20 against 109; `service=Exchange` (13 %) 123 against
# 104. So a lookup finding at most this share of the entries the walk would read is read through the
# index instead.
HISTOGRAM_LOOKUP_SHARE = 0.10


def lookup_beats_walk(
    connection: sqlite3.Connection,
    filters: EventFilters,
    lookup: Lookup,
    plan: Plan,
    low: int,
    high: int,
) -> bool:
    """Whether the lookup of a time plan finds at most HISTOGRAM_LOOKUP_SHARE of the entries a
    walk of [low, high) (within the filters' own range) would read, which are estimated as the
    events' share of the stored time span that the range covers. A lookup with a prefix term is
    counted only when the plan mapped it already (counting it merges every term's list)."""
    if not plan.lookup:
        return False
    first = connection.execute(
        "SELECT timestamp_ms FROM events ORDER BY timestamp_ms ASC LIMIT 1"
    ).fetchone()
    last = connection.execute(
        "SELECT timestamp_ms FROM events ORDER BY timestamp_ms DESC LIMIT 1"
    ).fetchone()
    if first is None or last is None:
        return False
    if filters.start is not None:
        low = max(low, timestamp_ms(filters.start))
    if filters.end is not None:
        high = min(high, timestamp_ms(filters.end) + 1)
    span = last[0] + 1 - first[0]
    covered = max(0, min(high, last[0] + 1) - max(low, first[0]))
    (newest,) = connection.execute("SELECT max(seq) FROM events").fetchone()
    bound = int((newest or 0) * covered / span * HISTOGRAM_LOOKUP_SHARE)
    if bound < COMMON_LOOKUP_ROWS:  # a walk of so few entries costs next to nothing
        return False
    if lookup.words and lookup.words_at_most is None:
        mapped = plan.word_map
        alone = lookup.expression == lookup.words
        return alone and mapped is not None and mapped.hits is not None and mapped.hits <= bound
    if lookup.words_at_most is not None and lookup.words_at_most <= bound:
        return True
    if (
        lookup.words_exact
        and lookup.words_at_most is not None
        and lookup.expression == lookup.words
    ):
        return False  # exactly that many, more than the bound
    return _at_most(connection, SEARCH_HITS, plan.lookup, bound) <= bound


def count_by_interval_split(
    connection: sqlite3.Connection,
    filters: EventFilters,
    start: datetime,
    interval_ms: int,
    buckets: int,
    column: str,
    values: Sequence[str],
) -> tuple[list[int], list[list[int]]]:
    """`count_by_interval` of the matches, and of the matches having each of `values` in
    `column` (a FACET_COLUMNS column), counted together: a walk of the time index counts an
    interval's matches and each value's at once (`count(CASE WHEN column = ? ...)` per value),
    where a walk per value read the index again for each (the overview's chart of five services
    at 1M events: 1.0 s against 0.38 for the five, same run). A lookup's few matches are counted
    per value, as `count_by_interval` groups them."""
    if column not in FACET_COLUMNS.values():  # written into the statement: a known column only
        raise ValueError(f"not a counted column: {column!r}")
    lookup = lookup_expression(connection, filters)
    plan = plan_for(connection, filters, lookup=lookup)
    if not plan.possible:
        return [0] * buckets, [[0] * buckets for _ in values]
    if plan.driver != "time":  # a FACET_COLUMNS column is also the name of its value filter
        return count_by_interval(connection, filters, start, interval_ms, buckets), [
            count_by_interval(
                connection,
                filters.model_copy(update={column: [value]}),
                start,
                interval_ms,
                buckets,
            )
            for value in values
        ]
    words = words_test_for(connection, plan, lookup)
    walked = walked_counts(
        connection, filters, plan, words, timestamp_ms(start), interval_ms, buckets, column, values
    )
    totals = [row[0] for row in walked]
    return totals, [[row[index + 1] for row in walked] for index in range(len(values))]


def walked_counts(
    connection: sqlite3.Connection,
    filters: EventFilters,
    plan: Plan,
    words: WordTest | None,
    origin: int,
    interval_ms: int,
    buckets: int,
    column: str = "",
    values: Sequence[str] = (),
) -> list[list[int]]:
    """Per interval, the matches, then the matches having each of `values` in `column` (a
    FACET_COLUMNS column), walking the time index in one statement: each interval is counted in a
    correlated subquery, so the filters' values (and a word map of up to 1 MB, which SQLite
    copies at each bind) are bound once, where a statement per interval bound them per interval
    (a week of a common word in 42 intervals: 23 ms against 15, same run)."""
    unbounded = filters.model_copy(update={"start": None, "end": None})
    counts = ["count(*)", *(f"count(CASE WHEN {column} = ? THEN 1 END)" for _ in values)]
    counted, params = selection(unbounded, plan, f"json_array({', '.join(counts)})", words=words)
    per_range = (
        f"SELECT ({counted} AND timestamp_ms >= json_extract(r.value, '$[0]') "
        "AND timestamp_ms < json_extract(r.value, '$[1]')) FROM json_each(?) AS r ORDER BY r.key"
    )
    ranges = interval_ranges(filters, origin, interval_ms, buckets)
    rows = connection.execute(per_range, [*values, *params, orjson.dumps(ranges).decode()])
    return [orjson.loads(counted_row) for (counted_row,) in rows]


def interval_ranges(
    filters: EventFilters, origin: int, interval_ms: int, buckets: int
) -> list[tuple[int, int]]:
    """The [low, high) time range of each interval, clamped to the filters' own start and end (an
    interval outside them is empty), so that SQLite is given one range per count: given both, it
    walked the filters' range for every interval."""
    first = timestamp_ms(filters.start) if filters.start is not None else origin
    last = timestamp_ms(filters.end) + 1 if filters.end is not None else None
    ranges = []
    for bucket in range(buckets):
        low = max(origin + bucket * interval_ms, first)
        high = origin + (bucket + 1) * interval_ms
        if last is not None:
            high = min(high, last)
        ranges.append((low, max(low, high)))
    return ranges


def filter_options(connection: sqlite3.Connection) -> FilterOptions:
    """From `event_values` and `event_actors` (kept by upserts), not from the events: a DISTINCT
    over a million events needs an index per field, which every insert would pay for."""

    def values(field: str) -> list[str]:
        rows = connection.execute(
            "SELECT value FROM event_values WHERE field = ? ORDER BY value LIMIT ?",
            (field, MAX_FILTER_OPTIONS),
        )
        return [value for (value,) in rows]

    options = {name: values(field) for name, field in OPTION_FIELDS.items()}
    options["actors"] = [
        actor
        for (actor,) in connection.execute(
            "SELECT actor_display FROM event_actors ORDER BY actor_display LIMIT ?",
            (MAX_FILTER_OPTIONS,),
        )
    ]
    options["tags"] = [
        tag
        for (tag,) in connection.execute(
            "SELECT DISTINCT tag FROM event_tags ORDER BY tag LIMIT ?", (MAX_FILTER_OPTIONS,)
        )
    ]
    return FilterOptions(**options)
