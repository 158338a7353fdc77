"""The embedded store keeps what it learnt of search words (terms, byte maps) between answers
(`sqlite_word_cache`). These tests hold a reader (the API's store) beside a writer on the same
file (the sink's store), change the file the ways the product does (events appended, an event's
words replaced, events purged, the reader's own tag writes), and compare every answer of the
reader with a store opened afresh, which has nothing kept."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from aoc_common.event_store.sqlite import SqliteEventStore
from aoc_common.events import CanonicalEvent, utc_now
from aoc_common.query import EventFilters, EventQuery
from tests.contract.test_event_store_contract import BASE_TIME, an_event

# More events than COMMON_LOOKUP_ROWS, so that common words are tested on walks of the time index.
FIRST_BATCH = 2_400
SEARCHES: list[dict[str, Any]] = [
    {"search": "mailbox"},  # in most events: mapped by its absences
    {"search": "forwarding"},  # in two of three
    {"search": "forw"},  # a prefix of a few terms: an OR of them
    {"search": "zq"},  # a prefix of more than MAX_PREFIX_TERMS terms: mapped by its hits
    {"search": "rarely"},  # a rare word: found through the search index
    {"search": "mailbox forw", "service": "Exchange"},
    {"search": "mailbox", "start": BASE_TIME - timedelta(days=2)},
]


def events(
    first: int, count: int, *, newest_minutes_ago: int, words: str = ""
) -> list[CanonicalEvent]:
    rng = random.Random(first)
    return [
        an_event(
            f"evt-{n}",
            minutes_ago=newest_minutes_ago + rng.randrange(5_000),
            raw_text=" ".join(
                [
                    "mailbox" if n % 13 else "inbox",
                    "forwarding" if n % 3 else "",
                    f"zq{n % 40}",
                    "rarely" if n % 600 == 0 else "",
                    words,
                ]
            ),
            service="Exchange" if n % 2 else "Intune",
            actor=f"Admin {n % 5}",
            ingested_at=utc_now() - timedelta(days=30 if n % 17 == 0 else 0),
        )
        for n in range(first, first + count)
    ]


async def answers(store: SqliteEventStore) -> list[Any]:
    """Every kind of answer of every search: a page, the count, facets, the histogram."""
    found: list[Any] = []
    start = BASE_TIME - timedelta(days=5)
    for search in SEARCHES:
        filters = EventFilters.model_validate(search)
        page = await store.query_events(EventQuery(**search, page_size=150))
        found.append([event.id for event in page.items])
        found.append(await store.count_matching(filters, limit=10_000))
        for sample in (100, None):
            facets = await store.facet_counts(filters, top=5, sample=sample)
            found.append((facets.facets, facets.counted, facets.complete))
        found.append(await store.count_by_interval(filters, start, 3_600_000, 5 * 24))
    return found


async def fresh_answers(path: Path) -> list[Any]:
    store = SqliteEventStore(path, retention_days=3650)
    await store.start()
    try:
        return await answers(store)
    finally:
        await store.stop()


@contextlib.asynccontextmanager
async def traced(store: SqliteEventStore) -> AsyncIterator[list[str]]:
    """The statements the store runs meanwhile (the trace is set on the store's own thread)."""
    statements: list[str] = []
    await store._run(lambda connection: connection.set_trace_callback(statements.append))
    try:
        yield statements
    finally:
        await store._run(lambda connection: connection.set_trace_callback(None))


def reads_of_words(statements: list[str]) -> list[str]:
    """Statements that read the words' lists whole (to map them) or the terms' counts."""
    return [
        sql for sql in statements if "json_group_array(rowid)" in sql or "aoc_search_terms" in sql
    ]


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteEventStore, SqliteEventStore]]:
    path = tmp_path / "events.sqlite3"
    writer = SqliteEventStore(path, retention_days=7)
    reader = SqliteEventStore(path, retention_days=3650)
    await writer.start()
    await reader.start()
    try:
        yield writer, reader
    finally:
        await reader.stop()
        await writer.stop()


async def test_a_reader_answers_as_a_fresh_store_while_events_are_added_changed_and_purged(
    stores: tuple[SqliteEventStore, SqliteEventStore],
):
    writer, reader = stores
    await writer.upsert_events(events(0, FIRST_BATCH, newest_minutes_ago=60))
    assert await answers(reader) == await fresh_answers(reader.path)
    # Asked again in the same snapshot: nothing is read again.
    async with traced(reader) as statements:
        again = await answers(reader)
    assert reads_of_words(statements) == []
    assert again == await fresh_answers(reader.path)

    # Appended (the newest events, with new terms for the prefixes and without the common word
    # in some): folded into what the reader keeps, not read again.
    await writer.upsert_events(
        events(FIRST_BATCH, 300, newest_minutes_ago=0, words="forwardx zq99 zqnew")
    )
    async with traced(reader) as statements:
        after_append = await answers(reader)
    assert reads_of_words(statements) == []
    assert after_append == await fresh_answers(reader.path)

    # The reader's own writes: tags change no words; events it adds itself (one process running
    # the sink and the API, as `aoc demo` does) are folded in like another writer's.
    page = await reader.query_events(EventQuery(search="rarely", page_size=1))
    await reader.set_tags(page.items[0].id, ["triaged"])
    assert await answers(reader) == await fresh_answers(reader.path)
    await reader.upsert_events(events(FIRST_BATCH + 300, 40, newest_minutes_ago=0, words="zqown"))
    async with traced(reader) as statements:
        after_own = await answers(reader)
    assert after_own == await fresh_answers(reader.path)
    assert reads_of_words(statements) == []

    # An event sent again with other words: the reader starts over.
    changed = events(FIRST_BATCH + 1, 1, newest_minutes_ago=0)[0]
    await writer.upsert_events([changed.model_copy(update={"raw_text": "inbox only"})])
    async with traced(reader) as statements:
        after_change = await answers(reader)
    assert after_change == await fresh_answers(reader.path)
    assert reads_of_words(statements)

    # Events purged (ingested 30 days ago, kept 7): the reader starts over.
    assert await writer.purge_expired() > 0
    async with traced(reader) as statements:
        after_purge = await answers(reader)
    assert after_purge == await fresh_answers(reader.path)
    assert reads_of_words(statements)


async def test_more_events_added_than_the_reader_folds_in_make_it_start_over(
    stores: tuple[SqliteEventStore, SqliteEventStore], monkeypatch: pytest.MonkeyPatch
):
    from aoc_common.event_store import sqlite_word_cache

    writer, reader = stores
    await writer.upsert_events(events(0, FIRST_BATCH, newest_minutes_ago=60))
    await answers(reader)
    monkeypatch.setattr(sqlite_word_cache, "MAX_FOLDED_EVENTS", 50)
    await writer.upsert_events(events(FIRST_BATCH, 51, newest_minutes_ago=0, words="zq77"))
    async with traced(reader) as statements:
        got = await answers(reader)
    assert got == await fresh_answers(reader.path)
    assert reads_of_words(statements)


def test_the_cache_keeps_the_most_recently_used_terms_and_maps_within_its_bounds():
    from aoc_common.event_store.sqlite_word_cache import (
        MAX_KEPT_MAPS,
        MAX_KEPT_TERMS,
        WordCache,
        WordMap,
    )

    cache = WordCache()
    for n in range(MAX_KEPT_TERMS + 5):
        cache.remember_terms(f"word{n}", [(f"word{n}", n)], 16)
        if n == 2:
            cache.remember_terms("kept", [("kept", 1)], 16)
        if n > 2:
            assert cache.terms("kept") == (True, [("kept", 1)])  # used: stays
    assert cache.terms("word0") == (False, None)  # the least recently used went first
    assert cache.terms(f"word{MAX_KEPT_TERMS + 4}")[0]
    assert sum(cache.terms(f"word{n}")[0] for n in range(MAX_KEPT_TERMS + 5)) == MAX_KEPT_TERMS - 1

    for n in range(MAX_KEPT_MAPS + 3):
        cache.remember_map((f"word{n}",), WordMap(b"\x00\x01", False, 1, 1))
    assert cache.word_map(("word0",)) is None
    assert cache.word_map((f"word{MAX_KEPT_MAPS + 2}",)) is not None
    kept = [n for n in range(MAX_KEPT_MAPS + 3) if cache.word_map((f"word{n}",)) is not None]
    assert len(kept) == MAX_KEPT_MAPS
