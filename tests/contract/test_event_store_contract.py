"""The event store contract: what every engine must do, stated once and run against each.

Every test takes `event_store` (or `engine`) and so runs on the embedded SQLite store and on the
Mongo store (in-process SecantusDB, or the MongoDB at AOC_TEST_MONGO_URI). The filter and search
semantics are also written out once in plain Python (`expected_ids`), and
`test_both_engines_return_the_same_pages_for_the_same_queries` checks that both stores agree with
that reference, page by page, on a mixed batch of events.
"""

from __future__ import annotations

import contextlib
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from pymongo import MongoClient

from aoc_common.event_store.base import MAX_FILTER_OPTIONS, EventStore, StoreError
from aoc_common.event_store.encoded import EncodedEvent
from aoc_common.event_store.mongo import TTL_INDEX, MongoEventStore
from aoc_common.event_store.sqlite import SqliteEventStore
from aoc_common.events import Actor, CanonicalEvent, Comment, Target, event_id_for, utc_now
from aoc_common.query import (
    FACET_FIELDS,
    MAX_TIMESTAMP_MS,
    MIN_TIMESTAMP_MS,
    VALUE_FILTERS,
    Cursor,
    EventFilters,
    EventQuery,
    FacetValue,
    MatchCount,
    UpsertResult,
    search_terms_for,
    top_values,
)
from aoc_common.rules import Alert, AlertQuery, Rule

ENGINES = ["embedded", "mongo"]
BASE_TIME = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
DAY_SECONDS = 86_400
# Generous bound for "answers at once": a catastrophic regex would take minutes, not seconds.
QUICK_SECONDS = 2.0


# --- builders ------------------------------------------------------------------------------------


def an_event(
    key: str = "evt-1",
    *,
    at: datetime | None = None,
    minutes_ago: float = 0,
    milliseconds_ago: int = 0,
    service: str = "Exchange",
    category: str = "ExchangeAdmin",
    operation: str = "Set-Mailbox",
    result: str = "success",
    source: str = "unified",
    actor: str = "Alice Admin",
    actor_type: str = "user",
    targets: Sequence[str] = ("Bob Example",),
    summary: str | None = None,
    raw: dict[str, Any] | None = None,
    raw_text: str | None = None,
    tags: Sequence[str] = (),
    comments: Sequence[Comment] = (),
    ingested_at: datetime | None = None,
) -> CanonicalEvent:
    """One admin action; every field has a plain default so a test names only what it is about."""
    raw = raw if raw is not None else {"Operation": operation, "UserId": actor}
    return CanonicalEvent(
        id=event_id_for(key),
        dedupe_key=key,
        source=source,  # type: ignore[arg-type]
        tenant_id="contoso",
        timestamp=at or BASE_TIME - timedelta(minutes=minutes_ago, milliseconds=milliseconds_ago),
        ingested_at=ingested_at or utc_now(),
        service=service,
        category=category,
        operation=operation,
        result=result,  # type: ignore[arg-type]
        actor_display=actor,
        target_displays=list(targets),
        display_summary=summary or f"{actor} ran {operation} on {', '.join(targets)}",
        actor=Actor(
            type=actor_type,  # type: ignore[arg-type]
            display_name=actor,
            user_principal_name="admin@contoso.com",
        ),
        targets=[Target(type="User", display_name=target) for target in targets],
        raw=raw,
        raw_text=raw_text if raw_text is not None else orjson.dumps(raw).decode(),
        tags=list(tags),
        comments=list(comments),
    )


def a_comment(text: str = "Confirmed with the change board", *, minute: int = 0) -> Comment:
    return Comment(
        author="analyst@contoso.com",
        text=text,
        created_at=BASE_TIME + timedelta(minutes=minute, microseconds=123_456),
    )


# --- the semantics, in plain Python --------------------------------------------------------------


def newest_first(events: Iterable[CanonicalEvent]) -> list[CanonicalEvent]:
    return sorted(events, key=lambda event: (event.timestamp, event.id), reverse=True)


def value_of(event: CanonicalEvent, field: str) -> str:
    """The event's value for a `VALUE_FILTERS` field."""
    return event.actor.type if field == "actor_type" else str(getattr(event, field))


def matches(event: CanonicalEvent, query: EventFilters) -> bool:
    """The filter contract (cursor and paging aside): every given filter holds."""
    if query.matches_nothing:
        return False
    for name in VALUE_FILTERS:
        value = value_of(event, name)
        wanted = query.values_of(name)
        if wanted and value not in wanted:
            return False
        if value in query.excluded_of(name):
            return False
    if query.actor and query.actor.lower() not in event.actor_display.lower():
        return False
    if query.start is not None and event.timestamp < query.start:
        return False
    if query.end is not None and event.timestamp > query.end:
        return False
    if not set(query.tags) <= set(event.tags):
        return False
    if set(query.exclude_tags) & set(event.tags):
        return False
    terms = search_terms_for(event)
    return all(any(term.startswith(token) for term in terms) for token in query.search_tokens)


def expected_ids(events: Iterable[CanonicalEvent], query: EventQuery) -> list[str]:
    ordered = newest_first(events)
    if query.order == "oldest":
        ordered.reverse()
    return [event.id for event in ordered if matches(event, query)]


def ids_of(events: Iterable[CanonicalEvent]) -> list[str]:
    return [event.id for event in events]


async def page_through(store: EventStore, query: EventQuery) -> list[list[CanonicalEvent]]:
    """Every page of a query, following `next_cursor` the way the API hands it out."""
    pages = []
    while True:
        page = await store.query_events(query)
        pages.append(page.items)
        if page.next_cursor is None:
            return pages
        query = query.model_copy(update={"cursor": Cursor.decode(page.next_cursor)})


async def all_ids(store: EventStore, **filters: Any) -> list[str]:
    pages = await page_through(store, EventQuery(page_size=filters.pop("page_size", 50), **filters))
    return [event.id for page in pages for event in page]


# --- fixtures ------------------------------------------------------------------------------------


@dataclass
class Engine:
    """One engine under test: `open()` gives a new, unstarted store on the same data."""

    name: str
    opener: Callable[[int], EventStore]
    db_name: str = ""  # Mongo only: the test's private database
    opened: list[EventStore] = field(default_factory=list)

    def open(self, *, retention_days: int = 90) -> EventStore:
        store = self.opener(retention_days)
        self.opened.append(store)
        return store


@pytest.fixture(scope="session")
def mongo_client(mongo_uri: str) -> Iterator[MongoClient[dict[str, Any]]]:
    """The tests' own look at the database (indexes), and what drops it afterwards.

    Synchronous pymongo: a sync fixture can be requested lazily (see `engine`), and a blocking
    call is harmless here because the server runs on its own threads.
    """
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=3000)
    yield client
    client.close()


@pytest.fixture(params=ENGINES)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    """The engine named by the parameter, on fresh, private data (a file, or a new database)."""
    client: MongoClient[dict[str, Any]] | None = None
    if request.param == "embedded":
        path = tmp_path / "events.sqlite3"
        engine = Engine("embedded", lambda days: SqliteEventStore(path, retention_days=days))
    else:
        # Only Mongo tests start the server: requested lazily, not as a fixture argument.
        uri: str = request.getfixturevalue("mongo_uri")
        client = request.getfixturevalue("mongo_client")
        db_name = f"aoc_contract_{uuid.uuid4().hex[:16]}"
        engine = Engine(
            "mongo", lambda days: MongoEventStore(uri, db_name, retention_days=days), db_name
        )
    yield engine
    for store in engine.opened:
        await store.stop()
    if client is not None:
        client.drop_database(engine.db_name)


@pytest.fixture
async def event_store(engine: Engine) -> EventStore:
    store = engine.open()
    await store.start()
    return store


def only_on(engine_name: str) -> pytest.MarkDecorator:
    """For what one engine does its own way (retention, indexes)."""
    return pytest.mark.parametrize("engine", [engine_name], indirect=True)


# --- paging --------------------------------------------------------------------------------------


async def test_paging_returns_every_event_exactly_once_newest_first(event_store: EventStore):
    # Three events share each minute, so the id has to break ties the same way on every page.
    events = [an_event(f"evt-{n}", minutes_ago=n // 3) for n in range(23)]
    await event_store.upsert_events(events)

    pages = await page_through(event_store, EventQuery(page_size=4))

    assert [len(page) for page in pages] == [4, 4, 4, 4, 4, 3]
    assert [event.id for page in pages for event in page] == ids_of(newest_first(events))


async def test_last_page_has_no_cursor_when_the_events_fill_it_exactly(event_store: EventStore):
    await event_store.upsert_events([an_event(f"evt-{n}", minutes_ago=n) for n in range(8)])

    pages = await page_through(event_store, EventQuery(page_size=4))

    assert [len(page) for page in pages] == [4, 4]


async def test_cursor_keeps_the_exact_millisecond_of_the_last_event(event_store: EventStore):
    # An instant where float `timestamp() * 1000` lands one millisecond low: a cursor computed that
    # way would skip the other events of the same millisecond.
    at = datetime(2038, 6, 1, 12, 0, 0, 2_000, tzinfo=UTC)
    events = [an_event(f"evt-{n}", at=at) for n in range(3)]
    await event_store.upsert_events(events)

    pages = await page_through(event_store, EventQuery(page_size=1))

    assert [event.id for page in pages for event in page] == ids_of(newest_first(events))


async def test_paging_is_stable_when_events_arrive_between_pages(event_store: EventStore):
    original = [an_event(f"evt-{n}", minutes_ago=n) for n in range(12)]
    await event_store.upsert_events(original)
    first = await event_store.query_events(EventQuery(page_size=5))
    assert first.next_cursor is not None
    cursor = Cursor.decode(first.next_cursor)

    # Newer events, events in the cursor's own millisecond (ids on both sides of it), and older.
    arrivals = [
        *(an_event(f"newer-{n}", minutes_ago=-1 - n) for n in range(3)),
        *(an_event(f"same-ms-{n}", minutes_ago=4) for n in range(6)),
        an_event("older-1", minutes_ago=30),
    ]
    await event_store.upsert_events(arrivals)
    rest = await page_through(event_store, EventQuery(page_size=5, cursor=cursor))

    seen = ids_of(first.items) + [event.id for page in rest for event in page]
    assert len(seen) == len(set(seen)), "an event was repeated"
    assert set(ids_of(original)) <= set(seen), "an event was skipped"
    behind_cursor = [
        event
        for event in [*original, *arrivals]
        if (event.timestamp, event.id) < (first.items[-1].timestamp, first.items[-1].id)
    ]
    assert seen[5:] == ids_of(newest_first(behind_cursor))


async def test_cursors_outside_the_data_give_everything_or_nothing(event_store: EventStore):
    await event_store.upsert_events([an_event(f"evt-{n}", minutes_ago=n) for n in range(3)])

    latest = Cursor(timestamp_ms=MAX_TIMESTAMP_MS, id="~")
    earliest = Cursor(timestamp_ms=MIN_TIMESTAMP_MS, id="")

    assert len((await event_store.query_events(EventQuery(cursor=latest))).items) == 3
    assert (await event_store.query_events(EventQuery(cursor=earliest))).items == []


# --- upserts -------------------------------------------------------------------------------------


async def test_upsert_keeps_analyst_tags_and_comments(event_store: EventStore):
    original = an_event("evt-1", summary="Alice disabled the mailbox", result="success")
    await event_store.upsert_events([original])
    await event_store.set_tags(original.id, ["investigating"])
    comment = a_comment()
    await event_store.add_comment(original.id, comment)

    # Microsoft reports the same record again, corrected; the normalizer knows nothing of tags.
    corrected = an_event(
        "evt-1", summary="Alice archived the mailbox", result="failure", tags=["from-normalizer"]
    )
    result = await event_store.upsert_events([corrected])

    assert result == UpsertResult(inserted=0, updated=1)
    stored = await event_store.get_event(original.id)
    assert stored is not None
    assert stored.id == original.id
    assert stored.tags == ["investigating"]
    assert stored.comments == [comment]
    assert stored.display_summary == "Alice archived the mailbox"
    assert stored.result == "failure"
    # The indexes follow the new content and keep the analyst's tags.
    assert await all_ids(event_store, search="archived", result="failure") == [original.id]
    assert await all_ids(event_store, search="disabled") == []
    assert await all_ids(event_store, tags=["investigating"]) == [original.id]
    assert await all_ids(event_store, tags=["from-normalizer"]) == []


async def test_upsert_counts_inserts_and_updates_and_the_last_duplicate_in_a_batch_wins(
    event_store: EventStore,
):
    first = an_event("evt-a", summary="first report")
    other = an_event("evt-b")
    last = an_event("evt-a", summary="last report")

    assert await event_store.upsert_events([first, other, last]) == UpsertResult(inserted=2)
    stored = await event_store.get_event(first.id)
    assert stored is not None
    assert stored.display_summary == "last report"
    assert await event_store.count_events() == 2
    assert await all_ids(event_store, search="first") == []


async def test_an_identical_reupsert_counts_as_updated(event_store: EventStore):
    events = [an_event("evt-a"), an_event("evt-b")]
    await event_store.upsert_events(events)

    assert await event_store.upsert_events(events) == UpsertResult(inserted=0, updated=2)
    assert await event_store.upsert_events([]) == UpsertResult()
    assert await event_store.count_events() == 2


async def test_a_batch_prepared_while_another_is_written_is_stored_like_any_upsert(
    event_store: EventStore,
):
    """The sink prepares batch N+1 (`prepare_upsert`: no I/O) while the store writes batch N
    (`upsert_prepared`), and gets what `upsert_events` gives: updates keep their event, values
    with a NUL character (which SQLite's JSON functions would cut short) and tags come back whole."""
    reported = an_event("prep-0", summary="first report")
    await event_store.upsert_events([reported])
    odd = an_event("prep-1", actor="nul\x00actor", operation="Set\x00Thing", tags=["t\x00g", "vip"])
    again = an_event("prep-0", summary="second report")
    batch = [odd, again, an_event("prep-2", tags=["vip"]), an_event("prep-3")]

    first = event_store.prepare_upsert([EncodedEvent.of(event) for event in batch[:2]])
    second = event_store.prepare_upsert([EncodedEvent.of(event) for event in batch[2:]])
    assert await event_store.upsert_prepared(first) == UpsertResult(inserted=1, updated=1)
    assert await event_store.upsert_prepared(second) == UpsertResult(inserted=2)

    for event in batch:
        assert await event_store.get_event(event.id) == event
    assert await event_store.count_events() == 4
    assert await all_ids(event_store, actor="nul\x00actor") == [odd.id]
    assert await all_ids(event_store, operation="Set\x00Thing") == [odd.id]
    assert await all_ids(event_store, tags=["t\x00g"]) == [odd.id]
    assert set(await all_ids(event_store, tags=["vip"])) == {odd.id, batch[2].id}
    assert await all_ids(event_store, search="second") == [reported.id]
    assert await all_ids(event_store, search="first") == []


# --- filters -------------------------------------------------------------------------------------


async def test_each_filter_narrows_the_result(event_store: EventStore):
    mailbox = an_event(
        "mailbox", minutes_ago=1, actor="Alice Admin", tags=["vip"], operation="Set-Mailbox"
    )
    group = an_event(
        "group",
        minutes_ago=2,
        service="AzureActiveDirectory",
        category="GroupManagement",
        operation="Add member to group",
        source="directory",
        actor="Bob Ops",
        tags=["vip", "reviewed"],
    )
    wipe = an_event(
        "wipe",
        minutes_ago=3,
        service="Intune",
        category="Device",
        operation="Wipe device",
        result="failure",
        source="intune",
        actor="alice.helpdesk@contoso.com",
    )
    rule = an_event(
        "rule",
        minutes_ago=4,
        operation="New-InboxRule",
        result="failure",
        actor="Mallory",
        tags=["reviewed"],
    )
    await event_store.upsert_events([mailbox, group, wipe, rule])

    cases: list[tuple[dict[str, Any], list[CanonicalEvent]]] = [
        ({}, [mailbox, group, wipe, rule]),
        ({"service": "Exchange"}, [mailbox, rule]),
        ({"service": "exchange"}, []),  # exact, not case-insensitive
        ({"operation": "Wipe device"}, [wipe]),
        ({"operation": "Wipe"}, []),  # exact, not a substring
        ({"result": "failure"}, [wipe, rule]),
        ({"source": "intune"}, [wipe]),
        ({"actor": "ALICE"}, [mailbox, wipe]),
        ({"actor": "helpdesk@contoso"}, [wipe]),
        ({"start": group.timestamp}, [mailbox, group]),  # inclusive
        ({"end": wipe.timestamp}, [wipe, rule]),  # inclusive
        ({"start": wipe.timestamp, "end": group.timestamp}, [group, wipe]),
        ({"tags": ["vip"]}, [mailbox, group]),
        ({"tags": ["vip", "reviewed"]}, [group]),  # every tag
        ({"search": "inbox"}, [rule]),
        ({"service": "Exchange", "result": "failure"}, [rule]),
        ({"actor": "alice", "source": "unified"}, [mailbox]),
        ({"tags": ["reviewed"], "search": "group"}, [group]),
    ]
    for filters, expected in cases:
        assert await all_ids(event_store, **filters) == ids_of(expected), filters


async def test_actor_filter_is_case_insensitive_with_python_lowercasing(event_store: EventStore):
    elodie = an_event("elodie", actor="ÉLODIE Duval")
    istanbul = an_event("istanbul", actor="İstanbul Ops", minutes_ago=1)
    await event_store.upsert_events([elodie, istanbul])

    assert await all_ids(event_store, actor="élodie") == [elodie.id]
    assert await all_ids(event_store, actor="DUVAL") == [elodie.id]
    # "İ".lower() is "i" + a combining dot: the query is lowered the same way as the column.
    assert await all_ids(event_store, actor="İstanbul") == [istanbul.id]
    assert await all_ids(event_store, actor="stanbul ops") == [istanbul.id]


async def test_actor_filter_is_escaped_not_a_regex(event_store: EventStore):
    dotted = an_event("dotted", actor="a.b admin")
    plain = an_event("plain", actor="axb admin", minutes_ago=1)
    percent = an_event("percent", actor="100% sure_admin", minutes_ago=2)
    # Catastrophic backtracking for `(a+)+$` if it ever ran as a regex.
    backtrack = an_event("backtrack", actor="a" * 40 + "!", minutes_ago=3)
    # MongoDB refuses a NUL inside a pattern; the escape must still find it.
    nul = an_event("nul", actor="nul\x00byte", minutes_ago=4)
    await event_store.upsert_events([dotted, plain, percent, backtrack, nul])

    cases: list[tuple[str, list[CanonicalEvent]]] = [
        (".*", []),
        ("a.b", [dotted]),
        ("(a+)+$", []),
        ("[ax]", []),
        ("^a", []),
        ("\\", []),
        ("%", [percent]),  # LIKE wildcards are plain characters too
        ("e_a", [percent]),
        ("\x00", [nul]),
        ("L\x00B", [nul]),
        ("a" * 41, []),
        ("a" * 40 + "!", [backtrack]),
    ]
    for actor, expected in cases:
        started = time.perf_counter()
        assert await all_ids(event_store, actor=actor) == ids_of(expected), actor
        assert time.perf_counter() - started < QUICK_SECONDS, actor


async def test_nosql_operator_strings_are_plain_values(event_store: EventStore):
    where = "{'$where': 'sleep(1000)'}"
    hostile_raw = {"$where": "sleep(1000)", "a.b": {"$gt": ""}, "$set": {"tags": ["pwned"]}}
    literal = an_event("literal", service=where, operation='{"$ne": null}', raw=hostile_raw)
    ordinary = an_event("ordinary", minutes_ago=1)
    await event_store.upsert_events([literal, ordinary])
    # A second delivery takes the update path, which must store the same keys just as literally.
    assert await event_store.upsert_events([literal]) == UpsertResult(updated=1)

    assert await all_ids(event_store, service=where) == [literal.id]
    assert await all_ids(event_store, operation='{"$ne": null}') == [literal.id]
    for filters in (
        {"service": '{"$ne": null}'},
        {"service": "{'$gt': ''}"},
        {"operation": "{'$regex': '.*'}"},
        {"actor": '{"$regex": ".*"}'},
        {"actor": "$where"},
        {"tags": ['{"$exists": true}']},
        {"tags": ["$all"]},
    ):
        started = time.perf_counter()
        assert await all_ids(event_store, **filters) == [], filters
        assert time.perf_counter() - started < QUICK_SECONDS, filters
    assert await event_store.get_event('{"$ne": null}') is None
    assert await event_store.set_tags('{"$ne": null}', ["x"]) is None
    stored = await event_store.get_event(literal.id)
    assert stored is not None
    assert stored.raw == hostile_raw
    assert stored.tags == []


# --- filter in, filter out -----------------------------------------------------------------------


async def test_multi_value_and_exclusion_filters_narrow_the_result(event_store: EventStore):
    mailbox = an_event("mailbox", minutes_ago=1, tags=["vip"])
    app = an_event(
        "app",
        minutes_ago=2,
        service="Entra ID",
        category="ApplicationManagement",
        operation="Add service principal",
        source="directory",
        actor="Sync App",
        actor_type="app",
        tags=["vip", "reviewed"],
    )
    wipe = an_event(
        "wipe",
        minutes_ago=3,
        service="Intune",
        category="Device",
        operation="Wipe device",
        result="partial",
        source="intune",
        actor="Intune",
        actor_type="system",
    )
    await event_store.upsert_events([mailbox, app, wipe])

    cases: list[tuple[dict[str, Any], list[CanonicalEvent]]] = [
        ({"service": "Exchange"}, [mailbox]),  # one value, as query strings always sent it
        ({"service": ["Exchange", "Intune"]}, [mailbox, wipe]),  # any of
        ({"service": ["Exchange", "Nope"]}, [mailbox]),
        ({"exclude_service": ["Exchange"]}, [app, wipe]),  # none of
        ({"exclude_service": ["Exchange", "Intune"]}, [app]),
        ({"service": ["Exchange", "Intune"], "exclude_service": ["Intune"]}, [mailbox]),
        ({"category": "Device"}, [wipe]),
        ({"exclude_category": ["Device", "ExchangeAdmin"]}, [app]),
        ({"actor_type": "app"}, [app]),
        ({"actor_type": ["app", "system"]}, [app, wipe]),
        ({"exclude_actor_type": ["user"]}, [app, wipe]),
        ({"result": ["partial"]}, [wipe]),
        ({"exclude_result": ["success"]}, [wipe]),
        ({"source": ["intune", "directory"]}, [app, wipe]),
        ({"exclude_source": "unified"}, [app, wipe]),
        ({"operation": ["Wipe device", "Set-Mailbox"]}, [mailbox, wipe]),
        ({"exclude_operation": ["Wipe device"]}, [mailbox, app]),
        ({"actor_display": ["Intune"]}, [wipe]),  # exact, not a part
        ({"actor_display": ["intune"]}, []),  # exact case too
        ({"actor_display": ["Sync"]}, []),
        ({"exclude_actor_display": ["Intune", "Alice Admin"]}, [app]),
        ({"actor": "in", "exclude_actor_display": ["Intune"]}, [mailbox]),  # Alice Admin
        ({"exclude_tags": ["reviewed"]}, [mailbox, wipe]),
        ({"tags": ["vip"], "exclude_tags": ["reviewed"]}, [mailbox]),
        ({"exclude_tags": ["vip", "nope"]}, [wipe]),
        ({"tags": ["vip"], "exclude_tags": ["vip"]}, []),
    ]
    for filters, expected in cases:
        assert await all_ids(event_store, **filters) == ids_of(expected), filters
        count = await event_store.count_matching(EventFilters(**filters))
        assert count == MatchCount(value=len(expected), exact=True), filters


async def test_filter_values_are_plain_strings_in_lists_too(event_store: EventStore):
    hostile = an_event("hostile", service='{"$ne": null}', category="%", actor="'; DROP")
    await event_store.upsert_events([hostile, an_event("plain", minutes_ago=1)])

    for filters in (
        {"service": ['{"$ne": null}']},
        {"category": ["%"]},
        {"actor_display": ["'; DROP"]},
    ):
        assert await all_ids(event_store, **filters) == [hostile.id], filters
    for filters in (
        {"service": ["{'$gt': ''}", ".*"]},
        {"category": ["_"]},
        {"exclude_service": ['{"$ne": null}', "Exchange"]},
    ):
        assert await all_ids(event_store, **filters) == [], filters


# --- order ---------------------------------------------------------------------------------------


async def test_oldest_first_pages_return_every_event_once_in_the_opposite_order(
    event_store: EventStore,
):
    events = [an_event(f"evt-{n}", minutes_ago=n // 3) for n in range(23)]
    await event_store.upsert_events(events)

    newest = await page_through(event_store, EventQuery(page_size=4))
    oldest = await page_through(event_store, EventQuery(page_size=4, order="oldest"))

    assert [len(page) for page in oldest] == [4, 4, 4, 4, 4, 3]
    flat_newest = [event.id for page in newest for event in page]
    assert [event.id for page in oldest for event in page] == flat_newest[::-1]


async def test_oldest_first_paging_is_stable_when_events_arrive(event_store: EventStore):
    original = [an_event(f"evt-{n}", minutes_ago=n) for n in range(12)]
    await event_store.upsert_events(original)
    first = await event_store.query_events(EventQuery(page_size=5, order="oldest"))
    assert first.next_cursor is not None

    arrivals = [an_event("older", minutes_ago=60), an_event("newer", minutes_ago=-5)]
    await event_store.upsert_events(arrivals)
    rest = await page_through(
        event_store, EventQuery(page_size=5, order="oldest", cursor=first.next_cursor)
    )

    seen = ids_of(first.items) + [event.id for page in rest for event in page]
    # The older arrival is behind the cursor and never shows; the newer one ends the list.
    assert seen == [*ids_of(newest_first(original))[::-1], event_id_for("newer")]


def test_a_cursor_cannot_continue_pages_of_the_other_order():
    newest = Cursor(timestamp_ms=1, id="a").encode()
    oldest = Cursor(timestamp_ms=1, id="a", order="oldest").encode()

    assert EventQuery(cursor=newest).cursor == Cursor(timestamp_ms=1, id="a")
    assert EventQuery(cursor=oldest, order="oldest").cursor is not None
    with pytest.raises(ValueError, match="order=newest"):
        EventQuery(cursor=newest, order="oldest")
    with pytest.raises(ValueError, match="order=oldest"):
        EventQuery(cursor=oldest)


# --- counts and facets ---------------------------------------------------------------------------


async def test_count_matching_is_exact_up_to_the_bound_then_says_more(event_store: EventStore):
    await event_store.upsert_events(
        [
            an_event(f"evt-{n}", minutes_ago=n, result="failure" if n < 3 else "success")
            for n in range(12)
        ]
    )

    assert await event_store.count_matching(EventFilters()) == MatchCount(value=12, exact=True)
    assert await event_store.count_matching(EventFilters(), limit=12) == MatchCount(
        value=12, exact=True
    )
    more = await event_store.count_matching(EventFilters(), limit=11)
    assert more == MatchCount(value=11, exact=False)
    assert more.label == "11+"
    failures = await event_store.count_matching(EventFilters(result="failure"), limit=5)
    assert failures == MatchCount(value=3, exact=True)
    assert await event_store.count_matching(EventFilters(search="()")) == MatchCount(
        value=0, exact=True
    )
    with pytest.raises(ValueError):
        await event_store.count_matching(EventFilters(), limit=0)


async def test_facet_counts_rank_values_by_count_then_value(event_store: EventStore):
    events = [
        an_event("a", minutes_ago=1, service="Exchange", actor="Zed", tags=["vip", "reviewed"]),
        an_event("b", minutes_ago=2, service="Intune", actor="Amy", tags=["vip"]),
        an_event("c", minutes_ago=3, service="Intune", actor="Bob", result="failure"),
        an_event("d", minutes_ago=4, service="Exchange", actor="Amy", actor_type="app"),
        an_event("e", minutes_ago=5, service="SharePoint", actor="Amy", category="Files"),
    ]
    await event_store.upsert_events(events)

    got = await event_store.facet_counts(EventFilters(), top=2)

    assert got.counted == 5
    assert got.complete is True
    assert got.facets["service"] == [
        FacetValue(value="Exchange", count=2),
        FacetValue(value="Intune", count=2),  # a tie: by value
    ]
    assert got.facets["actor"] == [
        FacetValue(value="Amy", count=3),
        FacetValue(value="Bob", count=1),
    ]
    assert got.facets["tags"] == [
        FacetValue(value="vip", count=2),
        FacetValue(value="reviewed", count=1),
    ]
    assert got.facets["result"] == [
        FacetValue(value="success", count=4),
        FacetValue(value="failure", count=1),
    ]
    assert got.facets["actor_type"][0] == FacetValue(value="user", count=4)
    assert got.facets["category"][0] == FacetValue(value="ExchangeAdmin", count=4)
    assert got.facets["source"] == [FacetValue(value="unified", count=5)]


async def test_facet_counts_follow_the_filters_and_say_what_they_covered(
    event_store: EventStore,
):
    events = [
        an_event(f"evt-{n}", minutes_ago=n, service="Exchange" if n % 2 else "Intune")
        for n in range(10)
    ]
    await event_store.upsert_events(events)

    only = await event_store.facet_counts(EventFilters(exclude_service="Intune"), ["service"])
    assert only.facets == {"service": [FacetValue(value="Exchange", count=5)]}
    # The newest 3 events are evt-0 (Intune), evt-1 (Exchange), evt-2 (Intune).
    newest = await event_store.facet_counts(EventFilters(), ["service", "operation"], sample=3)
    assert newest.facets["service"] == [
        FacetValue(value="Intune", count=2),
        FacetValue(value="Exchange", count=1),
    ]
    assert (newest.counted, newest.complete) == (3, False)
    exactly = await event_store.facet_counts(EventFilters(), ["service"], sample=10)
    assert (exactly.counted, exactly.complete) == (10, True)
    nothing = await event_store.facet_counts(EventFilters(search="zzz"), ["tags", "service"])
    assert nothing.facets == {"tags": [], "service": []}
    assert (nothing.counted, nothing.complete) == (0, True)
    with pytest.raises(ValueError, match="unknown facet field"):
        await event_store.facet_counts(EventFilters(), ["raw"])
    with pytest.raises(ValueError):
        await event_store.facet_counts(EventFilters(), ["service"], top=0)


async def test_a_facet_sample_of_a_filter_takes_its_newest_matches_ties_broken_by_id(
    event_store: EventStore,
):
    """A sample smaller than a filter's matches counts the ones a newest-first page lists first:
    by time, then by id among events of the same instant (the embedded store sorts a rare
    lookup's candidates by time alone and reads ids only for the instant the cut falls in)."""
    newer = [
        an_event(f"newer-{n}", minutes_ago=1, operation="Rare op", actor=f"n{n}") for n in range(4)
    ]
    tied = [
        an_event(f"tied-{n}", minutes_ago=2, operation="Rare op", actor=f"t{n}") for n in range(9)
    ]
    older = [
        an_event(f"older-{n}", minutes_ago=3, operation="Rare op", actor="o") for n in range(3)
    ]
    noise = [an_event(f"other-{n}", minutes_ago=0, actor="x") for n in range(5)]
    await event_store.upsert_events([*older, *noise, *tied, *newer])

    rare = EventFilters(operation=["Rare op"])
    got = await event_store.facet_counts(rare, ["actor"], top=20, sample=8)

    kept = newest_first([*newer, *tied, *older])[:8]
    assert {e.id for e in kept} & {e.id for e in tied}  # the cut splits the tied events
    assert len({e.id for e in kept} & {e.id for e in tied}) < len(tied)
    expected = sorted(event.actor_display for event in kept)
    assert sorted(value.value for value in got.facets["actor"]) == expected
    assert all(value.count == 1 for value in got.facets["actor"])
    assert (got.counted, got.complete) == (8, False)


# --- search --------------------------------------------------------------------------------------


async def test_search_matches_token_prefixes_in_summary_and_raw_text(event_store: EventStore):
    reset = an_event(
        "reset",
        summary="Alice reset the password of Bob",
        operation="Reset user password",
        raw_text='{"ClientIP": "203.0.113.7", "UserAgent": "PowerShell/7.4"}',
    )
    member = an_event(
        "member",
        minutes_ago=1,
        summary="Carol added a member to Finance Team",
        targets=["Finance Team"],
        raw_text='{"ObjectId": "mailbox-archive-policy"}',
    )
    await event_store.upsert_events([reset, member])

    cases: list[tuple[str, list[CanonicalEvent]]] = [
        ("pass", [reset]),
        ("PASSWORD bob", [reset]),  # every token, any case
        ("password carol", []),
        ("assword", []),  # a prefix of a word, not any substring
        ("203.0.113", [reset]),  # raw text, split into words
        ("powershel", [reset]),
        ("fin team", [member]),
        ("archive", [member]),
        ("exchange", [reset, member]),  # service is indexed too
        ("bob,  (alice)!", [reset]),  # punctuation only separates words
    ]
    for search, expected in cases:
        assert await all_ids(event_store, search=search) == ids_of(expected), search


async def test_hostile_search_returns_nothing_quickly(event_store: EventStore):
    # Words chosen so that no hostile input below shares a word prefix with them.
    events = [
        an_event(f"evt-{n}", minutes_ago=n, actor="Mallory", summary=f"routine change {n}")
        for n in range(5)
    ]
    await event_store.upsert_events(events)

    hostile = [
        ".*",
        "*",
        '"',
        "\\",
        "^$",
        "'\"();--",
        "%_%",
        "(a+)+$",  # the word prefix `a`, nothing more
        '" OR ""="',
        "NEAR(zz yy)",
        "zz OR yy",
        "NOT mallory",
        '"unterminated',
        "col:zz",
        "x" * 500,
        "$where",
        "{'$regex': '.*'}",
    ]
    for search in hostile:
        started = time.perf_counter()
        assert await all_ids(event_store, search=search) == [], search
        assert time.perf_counter() - started < QUICK_SECONDS, search
    assert await all_ids(event_store, search="mallory routine") == ids_of(newest_first(events))


async def test_a_search_that_can_match_nothing_never_reaches_the_database(engine: Engine):
    store = engine.open()
    await store.start()
    await store.stop()

    page = await store.query_events(EventQuery(search="'.*' ()"))

    assert page.items == []
    assert page.next_cursor is None


# --- single events, options, state --------------------------------------------------------------


async def test_get_event_returns_the_whole_event_or_none(event_store: EventStore):
    event = an_event(
        "whole",
        actor="Zoë Ångström",
        targets=["Grüne Gruppe", "東京チーム"],
        raw={"nested": {"list": [1, 2.5, None, True], "ünïcode": "✓"}, "big": 2**53 + 1},
        comments=[a_comment()],
    )
    await event_store.upsert_events([event])

    assert await event_store.get_event(event.id) == event
    assert await event_store.get_event(event_id_for("missing")) is None


async def test_count_events_counts_stored_events(event_store: EventStore):
    assert await event_store.count_events() == 0
    await event_store.upsert_events([an_event(f"evt-{n}") for n in range(7)])
    assert await event_store.count_events() == 7


async def test_filter_options_list_distinct_values(event_store: EventStore):
    await event_store.upsert_events(
        [
            an_event("a", service="Exchange", actor="bob", tags=["vip", "reviewed"]),
            an_event("b", service="Exchange", actor="Alice", result="failure", tags=["vip"]),
            an_event("c", service="Intune", source="intune", operation="Wipe", actor="alice"),
            an_event("d", service="AzureActiveDirectory", source="directory", actor="Ωmega"),
        ]
    )

    options = await event_store.filter_options()

    assert options.services == ["AzureActiveDirectory", "Exchange", "Intune"]
    assert options.operations == ["Set-Mailbox", "Wipe"]
    assert options.results == ["failure", "success"]
    assert options.sources == ["directory", "intune", "unified"]
    assert options.actors == ["Alice", "alice", "bob", "Ωmega"]  # distinct as written, sorted
    assert options.tags == ["reviewed", "vip"]


async def test_filter_options_are_capped_for_dropdowns(event_store: EventStore):
    many = [an_event(f"evt-{n:04}", actor=f"actor-{n:04}") for n in range(MAX_FILTER_OPTIONS + 3)]
    await event_store.upsert_events(many)

    actors = (await event_store.filter_options()).actors

    assert actors == [f"actor-{n:04}" for n in range(MAX_FILTER_OPTIONS)]


async def test_set_tags_and_add_comment_return_the_updated_event_or_none(
    event_store: EventStore,
):
    event = an_event("evt-1")
    await event_store.upsert_events([event])
    missing = event_id_for("missing")

    tagged = await event_store.set_tags(event.id, ["triage", "vip", "triage"])
    assert tagged is not None
    assert tagged.tags == ["triage", "vip"]
    assert await all_ids(event_store, tags=["vip"]) == [event.id]

    untagged = await event_store.set_tags(event.id, [])
    assert untagged is not None
    assert untagged.tags == []
    assert await all_ids(event_store, tags=["vip"]) == []
    assert (await event_store.filter_options()).tags == []

    first, second = a_comment("first look"), a_comment("escalated", minute=5)
    await event_store.add_comment(event.id, first)
    commented = await event_store.add_comment(event.id, second)
    assert commented is not None
    assert commented.comments == [first, second]
    assert commented.comments[0].created_at.microsecond == 123_000  # milliseconds, like Mongo
    assert await event_store.get_event(event.id) == commented

    assert await event_store.set_tags(missing, ["vip"]) is None
    assert await event_store.add_comment(missing, first) is None


async def test_state_round_trips(event_store: EventStore):
    watermark = {
        "watermark": "2026-11-02T09:30:00.123Z",
        "content_ids": ["a", "b"],
        "count": 3,
        "nested": {"none": None, "ratio": 1.5, "ünïcode": "✓"},
    }
    assert await event_store.get_state("collector.directory") is None

    await event_store.put_state("collector.directory", watermark)
    await event_store.put_state("collector.intune", {"watermark": None})

    assert await event_store.get_state("collector.directory") == watermark
    assert await event_store.get_state("collector.intune") == {"watermark": None}
    await event_store.put_state("collector.directory", {"watermark": "later"})
    assert await event_store.get_state("collector.directory") == {"watermark": "later"}


# --- lifecycle -----------------------------------------------------------------------------------


async def test_data_survives_reopen(engine: Engine):
    event = an_event("evt-1", comments=[a_comment()])
    store = engine.open()
    await store.start()
    await store.upsert_events([event, an_event("evt-2", minutes_ago=1)])
    await store.set_tags(event.id, ["vip"])
    await store.put_state("collector.unified", {"watermark": "w-1"})
    await store.stop()

    reopened = engine.open()
    await reopened.start()

    assert await reopened.count_events() == 2
    assert await reopened.get_event(event.id) == event.model_copy(update={"tags": ["vip"]})
    assert await all_ids(reopened, tags=["vip"], search="mailbox") == [event.id]
    assert await reopened.get_state("collector.unified") == {"watermark": "w-1"}


@only_on("embedded")
async def test_expired_events_are_purged_by_retention(engine: Engine):
    now = utc_now()
    old = an_event("old", ingested_at=now - timedelta(days=91), summary="ancient", tags=["old"])
    recent = an_event("recent", ingested_at=now - timedelta(days=89), minutes_ago=1)
    store = engine.open(retention_days=90)
    await store.start()
    await store.upsert_events([old, recent])

    assert await store.purge_expired(now) == 1
    assert await store.purge_expired(now) == 0
    assert await store.count_events() == 1
    assert await store.get_event(old.id) is None
    assert await all_ids(store, search="ancient") == []
    assert (await store.filter_options()).tags == []
    await store.stop()

    # start() applies retention too, with whatever period the store is now configured for.
    shorter = engine.open(retention_days=30)
    await shorter.start()
    assert await shorter.count_events() == 0


@only_on("mongo")
async def test_mongo_expires_events_with_a_ttl_index_on_ingested_at(
    engine: Engine, mongo_client: MongoClient[dict[str, Any]]
):
    events = mongo_client[engine.db_name]["events"]
    store = engine.open(retention_days=90)
    await store.start()
    await store.upsert_events([an_event("old", ingested_at=utc_now() - timedelta(days=91))])

    ttl = events.index_information()[TTL_INDEX]
    assert ttl["key"] == [("ingested_at", 1)]
    assert ttl["expireAfterSeconds"] == 90 * DAY_SECONDS
    assert await store.purge_expired() == 0  # the server's TTL monitor does the deleting
    await store.stop()

    shorter = engine.open(retention_days=30)
    await shorter.start()
    indexes = events.index_information()
    assert indexes[TTL_INDEX]["expireAfterSeconds"] == 30 * DAY_SECONDS
    assert [name for name, spec in indexes.items() if "expireAfterSeconds" in spec] == [TTL_INDEX]


@only_on("mongo")
async def test_mongo_creates_an_index_for_every_filter(
    event_store: EventStore, engine: Engine, mongo_client: MongoClient[dict[str, Any]]
):
    indexes = mongo_client[engine.db_name]["events"].index_information()
    keys = [spec["key"] for spec in indexes.values()]

    assert [("dedupe_key", 1)] in keys
    assert next(spec for spec in indexes.values() if spec["key"] == [("dedupe_key", 1)])["unique"]
    assert [("timestamp", -1), ("_id", -1)] in keys
    for field_name in (
        "service",
        "operation",
        "result",
        "source",
        "category",
        "actor.type",
        "actor_display",
    ):
        assert [(field_name, 1), ("timestamp", -1), ("_id", -1)] in keys
    for field_name in ("tags", "search_terms"):
        assert [(field_name, 1)] in keys
    # The actor filter reads `event_actors`; no index on every event's lowercased actor.
    assert [("actor_lower", 1)] not in keys


def a_closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_ping_raises_store_error_when_the_store_is_unreachable(
    engine: Engine, tmp_path: Path
):
    store = engine.open()
    await store.start()
    await store.ping()
    await store.stop()
    with pytest.raises(StoreError):
        await store.ping()

    if engine.name == "mongo":
        nowhere: EventStore = MongoEventStore(
            f"mongodb://127.0.0.1:{a_closed_port()}", "aoc", server_selection_timeout_ms=200
        )
    else:
        (tmp_path / "a-file").write_text("not a directory")
        nowhere = SqliteEventStore(tmp_path / "a-file" / "events.sqlite3")
    engine.opened.append(nowhere)
    with pytest.raises(StoreError):
        await nowhere.start()
    with pytest.raises(StoreError):
        await nowhere.ping()


# --- the cross-engine contract -------------------------------------------------------------------

MIXED_SERVICES = ["Exchange", "AzureActiveDirectory", "Intune", "SharePoint", "Ωmega Service"]
MIXED_OPERATIONS = ["Set-Mailbox", "Add member to group", "Wipe device", "New-InboxRule"]
MIXED_ACTORS = [
    "Alice Admin",
    "alice.helpdesk@contoso.com",
    "ÉLODIE Duval",
    "İstanbul Ops",
    "ſtraße Service",
    "100% sure_admin",
    "o'brien",
    "svc-backup",
]
# Words where Unicode case rules differ between libraries: long s, final sigma, dotted I,
# ligatures, math letters, superscripts, and a letter newer than SQLite's Unicode 6.1 tables.
MIXED_WORDS = [
    "password",
    "passport",
    "straße",
    "ſtraße",
    "STRASSE",
    "ΟΔΟΣ",
    "οδοσ",
    "ﬁle",
    "file",
    "𝔸lpha",
    "x²",
    "٣٤",
    "ꞻtest",
    "İzmir",
    "mailbox",
    "mail",
    "finance",
]
MIXED_TAGS = ["vip", "reviewed", "false-positive"]
MIXED_CATEGORIES = ["ExchangeAdmin", "UserManagement", "Device", "Ωmega Category"]


def a_mixed_batch(count: int = 150, seed: int = 20261123) -> list[CanonicalEvent]:
    """Events that stress ordering ties and Unicode, the same on every run."""
    rng = random.Random(seed)
    return [
        an_event(
            f"mixed-{n}",
            # Whole minutes make ties on the timestamp; odd milliseconds test cursor arithmetic.
            minutes_ago=rng.randrange(40),
            milliseconds_ago=rng.choice([0, rng.randrange(60_000)]),
            service=rng.choice(MIXED_SERVICES),
            category=rng.choice(MIXED_CATEGORIES),
            actor_type=rng.choice(["user", "app", "system", "unknown"]),
            operation=rng.choice(MIXED_OPERATIONS),
            result=rng.choice(["success", "failure", "unknown"]),
            source=rng.choice(["directory", "intune", "unified"]),
            actor=rng.choice(MIXED_ACTORS),
            summary=" ".join(rng.sample(MIXED_WORDS, 3)),
            raw_text=orjson.dumps({"words": rng.sample(MIXED_WORDS, 2)}).decode(),
            tags=rng.sample(MIXED_TAGS, rng.randrange(3)),
        )
        for n in range(count)
    ]


MIXED_QUERIES: list[dict[str, Any]] = [
    {},
    {"service": "Exchange"},
    {"service": "Ωmega Service"},
    {"operation": "Wipe device"},
    {"result": "failure"},
    {"source": "directory"},
    {"actor": "alice"},
    {"actor": "ſ"},
    {"actor": "S"},
    {"actor": "İ"},
    {"actor": "i"},
    {"actor": "%"},
    {"actor": "'"},
    {"start": BASE_TIME - timedelta(minutes=20)},
    {"end": BASE_TIME - timedelta(minutes=20)},
    {"start": BASE_TIME - timedelta(minutes=30), "end": BASE_TIME - timedelta(minutes=10)},
    {"tags": ["vip"]},
    {"tags": ["vip", "reviewed"]},
    {"search": "pass"},
    {"search": "ſt"},
    {"search": "st"},
    {"search": "οδοσ"},
    {"search": "οδος"},
    {"search": "ﬁ"},
    {"search": "fi"},
    {"search": "𝔸"},
    {"search": "x²"},
    {"search": "٣"},
    {"search": "ꞻ"},
    {"search": "i zm"},
    {"search": "mail finance"},
    {"search": "(a+)+$"},
    {"service": "Exchange", "search": "mail", "result": "success"},
    {"actor": "admin", "tags": ["reviewed"], "start": BASE_TIME - timedelta(minutes=25)},
    {"service": ["Exchange", "Intune"]},
    {"exclude_service": ["Exchange", "Ωmega Service"]},
    {"service": ["Exchange", "Intune"], "exclude_operation": ["Wipe device"]},
    {"category": "Device"},
    {"category": ["Ωmega Category", "Device"], "exclude_result": "failure"},
    {"actor_type": ["app", "system"]},
    {"exclude_actor_type": "user", "source": ["intune", "unified"]},
    {"actor_display": ["ÉLODIE Duval", "o'brien"]},
    {"exclude_actor_display": ["Alice Admin"], "actor": "a"},
    {"exclude_tags": ["vip"]},
    {"tags": ["reviewed"], "exclude_tags": ["false-positive"]},
    {"exclude_tags": ["vip", "reviewed"], "search": "pass"},
    {"order": "oldest"},
    {"order": "oldest", "service": "Exchange", "search": "mail"},
    {"order": "oldest", "start": BASE_TIME - timedelta(minutes=30), "actor": "i"},
]


@contextlib.asynccontextmanager
async def both_engines_holding(
    events: list[CanonicalEvent],
    tmp_path: Path,
    mongo_uri: str,
    mongo_client: MongoClient[dict[str, Any]],
) -> AsyncIterator[list[EventStore]]:
    """An embedded and a Mongo store, each holding `events`."""
    db_name = f"aoc_contract_{uuid.uuid4().hex[:16]}"
    stores: list[EventStore] = [
        SqliteEventStore(tmp_path / "events.sqlite3"),
        MongoEventStore(mongo_uri, db_name),
    ]
    try:
        for store in stores:
            await store.start()
            await store.upsert_events(events)
        yield stores
    finally:
        for store in stores:
            await store.stop()
        mongo_client.drop_database(db_name)


async def test_both_engines_return_the_same_pages_for_the_same_queries(
    tmp_path: Path, mongo_uri: str, mongo_client: MongoClient[dict[str, Any]]
):
    events = a_mixed_batch()
    async with both_engines_holding(events, tmp_path, mongo_uri, mongo_client) as stores:
        for filters in MIXED_QUERIES:
            query = EventQuery(page_size=7, **filters)
            expected = expected_ids(events, query)
            for store in stores:
                pages = await page_through(store, query)
                got = [event.id for page in pages for event in page]
                assert got == expected, (store.engine, filters)
                assert all(len(page) == 7 for page in pages[:-1]), (store.engine, filters)
        embedded, mongo = [await store.filter_options() for store in stores]
        assert embedded == mongo


def expected_histogram(
    matching: Sequence[CanonicalEvent], first: datetime, interval: timedelta, buckets: int
) -> list[int]:
    """The reference's count of `matching` events in each interval from `first`."""
    return [
        sum(1 for e in matching if first + n * interval <= e.timestamp < first + (n + 1) * interval)
        for n in range(buckets)
    ]


def expected_facets(
    events: Iterable[CanonicalEvent], filters: EventFilters, top: int, sample: int | None
) -> tuple[dict[str, list[FacetValue]], int, bool]:
    """Facet counts in plain Python: the newest `sample` matches, each field's values counted."""
    matching = [event for event in newest_first(events) if matches(event, filters)]
    counted = matching if sample is None else matching[:sample]
    facets: dict[str, list[FacetValue]] = {}
    for facet in FACET_FIELDS:
        if facet == "tags":
            values = [tag for event in counted for tag in event.tags]
        else:
            name = "actor_display" if facet == "actor" else facet
            values = [value_of(event, name) for event in counted]
        facets[facet] = top_values(values, top)
    return facets, len(counted), len(counted) == len(matching)


async def test_both_engines_count_and_facet_the_same_as_the_reference(
    tmp_path: Path, mongo_uri: str, mongo_client: MongoClient[dict[str, Any]]
):
    events = a_mixed_batch()
    async with both_engines_holding(events, tmp_path, mongo_uri, mongo_client) as stores:
        for filters in MIXED_QUERIES:
            query = EventFilters.model_validate(
                {name: value for name, value in filters.items() if name != "order"}
            )
            total = len(expected_ids(events, EventQuery.of(query)))
            for store in stores:
                assert await store.count_matching(query) == MatchCount(value=total, exact=True)
                bounded = await store.count_matching(query, limit=20)
                assert bounded == MatchCount(value=min(total, 20), exact=total <= 20), filters
                for top, sample in ((3, None), (10, 25), (2, 150)):
                    facets, counted, complete = expected_facets(events, query, top, sample)
                    got = await store.facet_counts(query, top=top, sample=sample)
                    assert got.facets == facets, (store.engine, filters, sample)
                    assert (got.counted, got.complete) == (counted, complete), filters


# --- events over time (the UI's histogram) -------------------------------------------------------


async def test_count_by_interval_counts_matching_events_per_interval(event_store: EventStore):
    hour_ms = 3_600_000
    start = BASE_TIME - timedelta(hours=3)
    await event_store.upsert_events(
        [
            an_event("a", at=start),  # first instant of interval 0
            an_event("b", at=start + timedelta(minutes=59, seconds=59, milliseconds=999)),
            an_event("c", at=start + timedelta(hours=1), service="Intune"),  # interval 1
            an_event("d", at=start + timedelta(hours=2, minutes=5), raw_text="forwarding rule"),
            an_event("e", at=start + timedelta(hours=3)),  # just past the last interval
            an_event("f", at=start - timedelta(milliseconds=1)),  # just before the first
        ]
    )

    assert await event_store.count_by_interval(EventQuery(), start, hour_ms, 3) == [2, 1, 1]
    only_exchange = EventQuery(service="Exchange")
    assert await event_store.count_by_interval(only_exchange, start, hour_ms, 3) == [2, 0, 1]
    searched = EventQuery(search="forward")
    assert await event_store.count_by_interval(searched, start, hour_ms, 3) == [0, 0, 1]
    narrowed = EventQuery(start=start + timedelta(minutes=30))
    assert await event_store.count_by_interval(narrowed, start, hour_ms, 3) == [1, 1, 1]
    assert await event_store.count_by_interval(EventQuery(search="()"), start, hour_ms, 3) == [
        0,
        0,
        0,
    ]


# --- alert rules and alerts ----------------------------------------------------------------------


def a_rule(rule_id: str = "rule-1", *, name: str = "Forwarding", enabled: bool = True) -> Rule:
    return Rule.model_validate(
        {
            "id": rule_id,
            "name": name,
            "severity": "high",
            "enabled": enabled,
            "match": {"all": [{"field": "operation", "op": "equals", "value": "Set-Mailbox"}]},
            "group_by": "actor_display",
            "threshold": {"count": 3, "window_seconds": 600},
        }
    )


def an_alert(
    alert_id: str = "alert-1",
    *,
    minute: int = 0,
    status: str = "open",
    severity: str = "high",
    rule_id: str = "rule-1",
) -> Alert:
    return Alert.model_validate(
        {
            "id": alert_id,
            "rule_id": rule_id,
            "rule_name": "Forwarding",
            "severity": severity,
            "status": status,
            "created_at": BASE_TIME + timedelta(minutes=minute, microseconds=654_321),
            "summary": f"Forwarding: {alert_id}",
            "group_value": "Alice Admin",
            "event_ids": [event_id_for("evt-1"), event_id_for("evt-2")],
        }
    )


async def alert_pages(store: EventStore, query: AlertQuery) -> list[list[Alert]]:
    pages: list[list[Alert]] = []
    while True:
        page = await store.query_alerts(query)
        pages.append(page.items)
        if page.next_cursor is None:
            return pages
        query = query.model_copy(update={"cursor": Cursor.decode(page.next_cursor)})


async def test_rules_can_be_created_read_replaced_listed_by_name_and_deleted(
    event_store: EventStore,
):
    await event_store.put_rule(a_rule("b", name="Mass deletion"))
    await event_store.put_rule(a_rule("a", name="Forwarding"))
    assert await event_store.get_rule("a") == a_rule("a", name="Forwarding")

    await event_store.put_rule(a_rule("a", name="Zebra", enabled=False))

    assert [(rule.id, rule.name) for rule in await event_store.list_rules()] == [
        ("b", "Mass deletion"),
        ("a", "Zebra"),
    ]
    assert (await event_store.get_rule("a")).enabled is False  # type: ignore[union-attr]
    assert await event_store.delete_rule("a") is True
    assert await event_store.delete_rule("a") is False
    assert await event_store.get_rule("a") is None
    assert [rule.id for rule in await event_store.list_rules()] == ["b"]


async def test_inserting_an_alert_twice_stores_it_once_and_keeps_its_acknowledgement(
    event_store: EventStore,
):
    assert await event_store.insert_alerts([an_alert("a1"), an_alert("a2")]) == ["a1", "a2"]
    acknowledged = await event_store.acknowledge_alert(
        "a1", "analyst@contoso.com", BASE_TIME + timedelta(hours=1, microseconds=999_999)
    )

    replayed = await event_store.insert_alerts([an_alert("a1"), an_alert("a3")])

    assert replayed == ["a3"]
    assert await event_store.get_alert("a1") == acknowledged
    assert await event_store.existing_alert_ids(["a1", "a3", "nope"]) == {"a1", "a3"}
    assert len((await event_store.query_alerts(AlertQuery(page_size=50))).items) == 3


async def test_acknowledging_keeps_the_first_acknowledgement_and_unknown_ids_give_none(
    event_store: EventStore,
):
    await event_store.insert_alerts([an_alert("a1")])
    at = BASE_TIME + timedelta(hours=2, microseconds=123_456)

    first = await event_store.acknowledge_alert("a1", "first@contoso.com", at)
    again = await event_store.acknowledge_alert("a1", "second@contoso.com", at + timedelta(days=1))

    assert first is not None and first.status == "acknowledged"
    assert first.acknowledged_by == "first@contoso.com"
    assert first.acknowledged_at == BASE_TIME + timedelta(hours=2, microseconds=123_000)
    assert again == first
    assert await event_store.acknowledge_alert("missing", "x", at) is None
    assert await event_store.get_alert("missing") is None


async def test_alerts_page_newest_first_with_filters_and_cursor(event_store: EventStore):
    alerts = [
        an_alert(
            f"alert-{n:02d}",
            minute=n // 2,  # two alerts per minute: the id breaks the tie on every page
            severity="high" if n % 3 else "low",
            rule_id="rule-a" if n % 2 else "rule-b",
        )
        for n in range(11)
    ]
    await event_store.insert_alerts(alerts)
    await event_store.acknowledge_alert("alert-04", "analyst", BASE_TIME)
    newest = sorted(alerts, key=lambda a: (a.created_at, a.id), reverse=True)

    pages = await alert_pages(event_store, AlertQuery(page_size=4))
    assert [len(page) for page in pages] == [4, 4, 3]
    assert [a.id for page in pages for a in page] == [a.id for a in newest]

    high_rule_a = await alert_pages(
        event_store, AlertQuery(severity="high", rule_id="rule-a", page_size=2)
    )
    assert [a.id for page in high_rule_a for a in page] == [
        a.id for a in newest if a.severity == "high" and a.rule_id == "rule-a"
    ]
    acknowledged = await event_store.query_alerts(AlertQuery(status="acknowledged"))
    assert [a.id for a in acknowledged.items] == ["alert-04"]
    still_open = await alert_pages(event_store, AlertQuery(status="open", page_size=3))
    assert len([a for page in still_open for a in page]) == 10


async def test_alerts_are_counted_per_rule_severity_and_status_with_their_event_time(
    event_store: EventStore,
):
    at = BASE_TIME - timedelta(hours=3)
    alerts = [
        an_alert("a1", rule_id="rule-b", severity="high"),
        an_alert("a2", rule_id="rule-b", severity="high"),
        an_alert("a3", rule_id="rule-b", severity="high"),
        an_alert("a4", rule_id="rule-a", severity="low").model_copy(
            update={"rule_name": "Mass deletion", "event_at": at}
        ),
    ]
    await event_store.insert_alerts(alerts)
    await event_store.acknowledge_alert("a2", "analyst", BASE_TIME)

    counts = await event_store.alert_counts()

    assert [(c.rule_id, c.rule_name, c.severity, c.status, c.count) for c in counts] == [
        ("rule-b", "Forwarding", "high", "acknowledged", 1),
        ("rule-b", "Forwarding", "high", "open", 2),
        ("rule-a", "Mass deletion", "low", "open", 1),
    ]
    assert (await event_store.get_alert("a4")).event_at == at  # type: ignore[union-attr]
    assert (await event_store.get_alert("a1")).event_at is None  # type: ignore[union-attr]


def a_large_mixed_batch(count: int) -> list[CanonicalEvent]:
    """More events than COMMON_LOOKUP_ROWS, so that SQLite meets common and rare lookups."""
    rng = random.Random(5)
    return [
        an_event(
            f"evt-{n}",
            minutes_ago=rng.randrange(10_000),
            milliseconds_ago=n % 7,
            tags=["common"] + (["rare"] if n % 500 == 0 else []),
            raw_text="mailbox forwarding" if n % 3 else "mailbox",
            service="Exchange" if n % 2 else "Intune",
            operation="Wipe device" if n % 250 == 0 else "Set-Mailbox",
            category="Device" if n % 7 == 0 else "ExchangeAdmin",
            result="partial" if n % 300 == 0 else "success",
            actor_type="app" if n % 11 == 0 else "user",
            actor=f"Admin {n % 5}" if n % 400 else "Rare Actor",
        )
        for n in range(count)
    ]


LARGE_BATCH_QUERIES: list[dict[str, Any]] = [
    {"tags": ["common"], "page_size": 500},
    {"search": "mail", "page_size": 500},
    {"search": "mailbox forw", "service": "Exchange", "page_size": 500},
    {"tags": ["common", "rare"], "search": "mailbox", "page_size": 7},
    {"tags": ["common"], "search": "forwarding", "page_size": 333},
    {"actor": "admin", "page_size": 400},
    {"actor": "ADMIN 3", "search": "mailbox", "page_size": 50},
    {"actor": "rare", "page_size": 3},
    {"actor": "dmin 1", "tags": ["common"], "page_size": 100},
    {"actor": "nobody at all"},
    {"service": "Exchange", "page_size": 500},  # common value: walks the time index
    {"operation": "Wipe device", "page_size": 4},  # rare value: found by its token
    {"result": ["partial", "failure"], "service": "Intune"},
    {"category": "Device", "actor_type": "app", "page_size": 20},  # common values, rare together
    {"actor_display": "Rare Actor", "exclude_result": "partial"},
    {"exclude_service": "Intune", "operation": "Wipe device", "order": "oldest"},
    {"exclude_category": "ExchangeAdmin", "order": "oldest", "page_size": 300},
    {"service": "Nope"},
]


@only_on("embedded")
async def test_a_facet_sample_walks_no_further_than_its_bound(
    event_store: EventStore, monkeypatch: pytest.MonkeyPatch
):
    """SQLite's facet sample walks at most the newest max(FACET_WALK_PER_SAMPLE x sample,
    FACET_WALK_MIN) events of the filters' time range and counts the matches found there: the
    newest matches still, only fewer of them when they are sparse, and never `complete` when
    older events were left unread. Bounds made small here, and every lookup made common, so that
    150 events take the walk."""
    from aoc_common.event_store import sqlite_query

    monkeypatch.setattr(sqlite_query, "RARE_FACET_ROWS", 0)
    monkeypatch.setattr(sqlite_query, "FACET_WALK_MIN", 0)
    monkeypatch.setattr(sqlite_query, "FACET_WALK_PER_SAMPLE", 2)
    events = a_mixed_batch()
    await event_store.upsert_events(events)
    shrunk = 0
    for filters in MIXED_QUERIES:
        query = EventFilters.model_validate(
            {name: value for name, value in filters.items() if name != "order"}
        )
        for sample in (10, 25):
            in_range = [
                event
                for event in newest_first(events)
                if matches(event, EventFilters(start=query.start, end=query.end))
            ]
            looked_at = in_range[: 2 * sample]
            found = [event for event in looked_at if matches(event, query)]
            facets, counted, _ = expected_facets(found, query, 3, sample)
            complete = len(in_range) <= 2 * sample and len(found) <= sample

            got = await event_store.facet_counts(query, top=3, sample=sample)

            assert (got.facets, got.counted, got.complete) == (facets, counted, complete), (
                filters,
                sample,
            )
            shrunk += counted < min(sample, len([e for e in events if matches(e, query)]))
    assert shrunk  # some sparse matches did give a smaller sample


WORD_QUERIES: list[dict[str, Any]] = [
    {"search": "mailbox"},
    {"search": "mailbox", "start": BASE_TIME - timedelta(days=2)},
    {"search": "forwarding"},
    {"search": "mail", "service": "Exchange"},
    {"search": "forwarding", "tags": ["common"]},
    {"search": "mailbox forw", "start": BASE_TIME - timedelta(days=3)},
    {"search": "wipe"},
]


@only_on("embedded")
@pytest.mark.parametrize(
    ("absent_share", "prefix_terms"),
    [(0.0, 16), (1.0, 16), (1.0, 0)],
    ids=["absences", "hits", "prefix terms"],
)
async def test_search_words_walked_by_their_hits_or_absences_answer_the_same(
    event_store: EventStore,
    monkeypatch: pytest.MonkeyPatch,
    absent_share: float,
    prefix_terms: int,
):
    """A walk of the time index tests search words against a byte per event of their hits, or
    of their absences when they may find more than ABSENT_MAP_SHARE of the events (a word
    starting more than MAX_PREFIX_TERMS terms is mapped by its hits): pages, counts, histograms
    (words in most events: the other filters' histogram less their absences) and facets are the
    same either way, and a histogram looks the words up once per answer, not once per
    interval."""
    import sqlite3

    from aoc_common.event_store import sqlite_query

    monkeypatch.setattr(sqlite_query, "ABSENT_MAP_SHARE", absent_share)
    monkeypatch.setattr(sqlite_query, "MAX_PREFIX_TERMS", prefix_terms)
    events = a_large_mixed_batch(sqlite_query.COMMON_LOOKUP_ROWS + 300)
    # The newest stored events (the highest seqs) without "forwarding": past the end of its hits.
    events += [an_event(f"late-{n}", minutes_ago=n, raw_text="mailbox") for n in range(3)]
    await event_store.upsert_events(events)
    # Every word but the rarest ("wipe": 10 events) then walks the time index.
    monkeypatch.setattr(sqlite_query, "COMMON_LOOKUP_ROWS", 100)
    start, day = BASE_TIME - timedelta(days=7), timedelta(days=1)
    for filters in WORD_QUERIES:
        query = EventQuery(**filters, page_size=400)
        pages = await page_through(event_store, query)
        assert [event.id for page in pages for event in page] == expected_ids(events, query)
        # Small pages of a word alone look each entry they walk up in the index: three of them.
        for order in ("newest", "oldest"):
            query = EventQuery(**filters, page_size=9, order=order)
            got_ids: list[str] = []
            for _ in range(3):
                page = await event_store.query_events(query)
                got_ids += [event.id for event in page.items]
                if page.next_cursor is None:
                    break
                query = query.model_copy(update={"cursor": Cursor.decode(page.next_cursor)})
            assert got_ids == expected_ids(events, query)[: len(got_ids)], (filters, order)
        only = EventFilters(**filters)
        matching = [event for event in events if matches(event, only)]
        assert await event_store.count_matching(only, limit=5_000) == MatchCount(
            value=len(matching), exact=True
        ), filters
        facets, counted, complete = expected_facets(events, only, 3, 100)
        got = await event_store.facet_counts(only, top=3, sample=100)
        assert (got.facets, got.counted, got.complete) == (facets, counted, complete), filters
        for first, interval, buckets in ((start, day, 7), (start + 4 * day, day / 24, 48)):
            histogram = await event_store.count_by_interval(
                only, first, int(interval.total_seconds() * 1000), buckets
            )
            assert histogram == expected_histogram(matching, first, interval, buckets), (
                filters,
                buckets,
            )

    statements: list[str] = []
    with contextlib.closing(sqlite3.connect(event_store.path)) as connection:  # type: ignore[attr-defined]
        connection.set_trace_callback(statements.append)
        sqlite_query.count_by_interval(
            connection, EventFilters(search="forwarding"), start, 3_600_000, 7 * 24
        )
    searches = [sql for sql in statements if "MATCH" in sql and not sql.startswith("--")]
    assert 1 <= len(searches) <= 3, searches
    if absent_share:
        return
    # A small page of a word found in most events looks each entry it walks up in the index
    # rather than make a map of its absences (its fixed cost is a read of every event's token).
    with contextlib.closing(sqlite3.connect(event_store.path)) as connection:  # type: ignore[attr-defined]
        connection.set_trace_callback(statements.append)
        statements.clear()
        sqlite_query.page_docs(connection, EventFilters(search="mailbox"), None, "newest", 10)
    assert [sql for sql in statements if "EXISTS (SELECT 1 FROM event_search" in sql], statements
    # Without a known value to list every event by, the words are mapped by their hits.
    with contextlib.closing(sqlite3.connect(event_store.path)) as connection:  # type: ignore[attr-defined]
        connection.execute("DELETE FROM event_values")
        everywhere = sqlite_query.word_test_of(
            connection, '"mailbox"', words_at_most=len(events), exact=True
        )
    assert (sum(everywhere.flags), everywhere.absent) == (len(events), False)


@only_on("embedded")
async def test_a_histogram_reads_a_lookup_finding_few_of_its_range_through_the_index(
    event_store: EventStore, monkeypatch: pytest.MonkeyPatch
):
    """A histogram whose lookup finds at most HISTOGRAM_LOOKUP_SHARE of the entries a walk of
    its range would read groups the lookup's matches instead of walking the time index (here the
    bound is lowered so that 2,300 events meet it): the counts are the reference's either way,
    for ranges covering every stored event or part of them."""
    import sqlite3

    from aoc_common.event_store import sqlite_query

    monkeypatch.setattr(sqlite_query, "COMMON_LOOKUP_ROWS", 10)
    monkeypatch.setattr(sqlite_query, "HISTOGRAM_LOOKUP_SHARE", 0.2)
    events = a_large_mixed_batch(2_300)
    await event_store.upsert_events(events)
    day = timedelta(days=1)
    looked_up = {
        "category": {"category": "Device"},  # 1 in 7
        "actor type": {"actor_type": "app"},  # 1 in 11
        "words and a value": {"search": "mailbox", "category": "Device"},
        "with a tag": {"tags": ["common"], "category": "Device"},
        "a prefix and a value": {"search": "forw", "actor_type": "app"},
    }
    walked = {
        "common value": {"service": "Exchange"},  # 1 in 2
        "common word": {"search": "forwarding"},
        "no filter": {},
    }
    with contextlib.closing(sqlite3.connect(event_store.path)) as connection:  # type: ignore[attr-defined]
        for name, filters in {**looked_up, **walked}.items():
            only = EventFilters.model_validate(filters)
            matching = [event for event in events if matches(event, only)]
            for start, days in ((BASE_TIME - 7 * day, 7), (BASE_TIME - 3 * day, 1)):
                statements: list[str] = []
                connection.set_trace_callback(statements.append)
                got = sqlite_query.count_by_interval(connection, only, start, 86_400_000, days)
                connection.set_trace_callback(None)
                assert got == expected_histogram(matching, start, day, days), (name, days)
                grouped = any("GROUP BY 1" in sql and "MATCH" in sql for sql in statements)
                # One day of seven holds too few entries to beat, whatever the lookup.
                assert grouped == (name in looked_up and days == 7), (name, days, statements)


async def test_interval_counts_per_value_are_each_value_s_histogram(event_store: EventStore):
    """The overview's stacked chart: counts per interval for each of a field's values, the same
    as the histogram of the events having that value (the embedded store counts them in one walk
    of its time index when the filters are common, per value when a lookup finds few)."""
    from aoc_common.event_store.sqlite_query import COMMON_LOOKUP_ROWS

    events = a_large_mixed_batch(COMMON_LOOKUP_ROWS + 300)
    await event_store.upsert_events(events)
    start, day = BASE_TIME - timedelta(days=7), timedelta(days=1)
    for filters, counted in (
        ({}, "service"),
        ({"search": "mailbox forwarding"}, "actor_type"),
        ({"start": start + day, "end": start + 5 * day}, "category"),
        ({"operation": "Wipe device"}, "result"),  # found by the search index: per value
    ):
        only = EventFilters.model_validate(filters)
        values = [*sorted({value_of(event, counted) for event in events}), "no such value"]
        totals, got = await event_store.count_by_interval_split(
            only, start, 86_400_000, 7, counted, values
        )
        matching = [event for event in events if matches(event, only)]
        assert totals == expected_histogram(matching, start, day, 7), filters
        assert got == [
            [
                sum(
                    1
                    for e in matching
                    if value_of(e, counted) == value
                    and start + n * day <= e.timestamp < start + (n + 1) * day
                )
                for n in range(7)
            ]
            for value in values
        ], (filters, counted)


@only_on("embedded")
async def test_common_and_rare_lookups_answer_the_same(event_store: EventStore):
    """SQLite walks the time index when what a query looks up is common (more than
    COMMON_LOOKUP_ROWS events) and looks rare things up in the search index: pages, counts and
    facets must not change with the plan."""
    from aoc_common.event_store.sqlite_query import COMMON_LOOKUP_ROWS

    events = a_large_mixed_batch(COMMON_LOOKUP_ROWS + 300)
    await event_store.upsert_events(events)

    for filters in LARGE_BATCH_QUERIES:
        query = EventQuery(**filters)
        pages = await page_through(event_store, query)
        expected = expected_ids(events, query)
        assert [event.id for page in pages for event in page] == expected, filters
        only = EventFilters.model_validate(
            {k: v for k, v in filters.items() if k not in ("page_size", "order")}
        )
        total = len(expected)
        assert await event_store.count_matching(only, limit=5_000) == MatchCount(
            value=total, exact=True
        ), filters
        assert (await event_store.count_matching(only, limit=10)).value == min(total, 10)
        # sample=100 walks the time index for common lookups; 5,000 and None read every match
        # of a lookup up to RARE_FACET_ROWS through the index, unordered.
        for sample in (100, 5_000, None):
            facets, counted, complete = expected_facets(events, only, 3, sample)
            got = await event_store.facet_counts(only, top=3, sample=sample)
            assert (got.facets, got.counted, got.complete) == (facets, counted, complete), (
                filters,
                sample,
            )
        start, day = BASE_TIME - timedelta(days=7), timedelta(days=1)
        histogram = await event_store.count_by_interval(only, start, 86_400_000, 7)
        matching = [event for event in events if matches(event, only)]
        assert histogram == expected_histogram(matching, start, day, 7), filters

    # And the plans really differ: common lookups walk the time index, rare ones use the index.
    import sqlite3

    from aoc_common.event_store.sqlite_query import (
        decided_by_index,
        facet_counts,
        plan_for,
        word_test_of,
    )

    with contextlib.closing(sqlite3.connect(event_store.path)) as connection:  # type: ignore[attr-defined]
        drivers = {
            name: plan_for(connection, EventFilters(**filters)).driver
            for name, filters in {
                "common value": {"service": ["Exchange", "Intune"]},
                "rare value": {"operation": "Wipe device"},
                "rare together": {"category": "Device", "actor_type": "app"},
                "rare tag": {"tags": ["common", "rare"], "search": "mailbox"},
                "common word": {"search": "mail"},
            }.items()
        }
        # Counts come from the search index alone when it decides every filter.
        decided = {
            name: decided_by_index(connection, EventFilters(**filters))
            for name, filters in {
                "rare value": {"operation": "Wipe device"},
                "values and words": {"service": ["Exchange", "Intune"], "search": "mail"},
                "actor part": {"actor": "rare"},
                "exact actor": {"actor_display": "Rare Actor"},
                "category (no census)": {"category": "Device"},
                "exclusion": {"operation": "Wipe device", "exclude_service": "Intune"},
                "tag": {"search": "mail", "tags": ["rare"]},
                "time range": {"search": "mail", "start": BASE_TIME - timedelta(days=1)},
            }.items()
        }
        assert decided == {
            "rare value": True,
            "values and words": True,
            "actor part": True,
            "exact actor": True,
            "category (no census)": False,
            "exclusion": False,
            "tag": False,
            "time range": False,
        }
        # A walk tests words against a byte per seq of their hits, or of their absences when they
        # may find more than half the events ("forwarding" is in two events of three).
        wipe = word_test_of(connection, '"wipe"')
        wiped = sum(1 for e in events if e.operation == "Wipe device")
        assert (sum(wipe.flags), wipe.absent) == (wiped, False)
        counted = word_test_of(connection, '"wipe"', words_at_most=len(events))
        assert (sum(counted.flags), counted.absent) == (wiped, False)  # too many by the terms only
        without = sum(1 for e in events if "forwarding" not in e.raw_text)
        assert without < len(events) / 2
        forwarding = word_test_of(
            connection, '"forwarding"', words_at_most=len(events) - without, exact=True
        )
        assert (sum(forwarding.flags), forwarding.absent) == (without, True)
        # A prefix term is read once, by its hits, however many it finds.
        prefix = word_test_of(connection, '"forw"*')
        assert (sum(prefix.flags), prefix.absent) == (len(events) - without, False)
        # Facets over a sample of 5,000 take every match of a lookup finding fewer events.
        assert plan_for(connection, EventFilters(search="mail"), rare=5_000).driver == "search"
        assert plan_for(connection, EventFilters(tags=["common"]), rare=5_000).driver == "tag"
        # A sample smaller than the few matches of a lookup keeps the newest of them without a
        # walk of the time index (a 0.7 % operation in 1M events: 72 ms by the walk) and without
        # SQLite's sorter (`newest_rows` picks them by time). The reference comparisons above
        # check which ones (sample=100).
        statements: list[str] = []
        connection.set_trace_callback(statements.append)
        sample = facet_counts(connection, EventFilters(search="mail"), ["service"], 3, 100)
        connection.set_trace_callback(None)
        assert (sample.counted, sample.complete) == (100, False)
        plans = [
            detail
            for sql in statements
            if sql.lstrip().upper().startswith("SELECT")
            for *_, detail in connection.execute(f"EXPLAIN QUERY PLAN {sql}")
        ]
        assert not [detail for detail in plans if "events_by_time" in detail], plans
        assert not [detail for detail in plans if "TEMP B-TREE" in detail], plans
    assert drivers == {
        "common value": "time",
        "rare value": "search",
        "rare together": "search",
        "rare tag": "tag",
        "common word": "time",
    }


@only_on("embedded")
async def test_values_sharing_a_lookup_token_are_still_told_apart(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    """Filter values are looked up by a 32-bit hash; two values with the same hash only add
    candidates, which the row check removes."""
    from aoc_common.event_store import sqlite_query, sqlite_schema

    def colliding(field: str, value: str) -> str:
        return f"{sqlite_schema.VALUE_TOKEN_MARK}{sqlite_schema.VALUE_TOKEN_LETTERS[field]}0"

    monkeypatch.setattr(sqlite_schema, "value_token", colliding)
    monkeypatch.setattr(sqlite_query, "value_token", colliding)
    store = engine.open()
    await store.start()
    events = [
        an_event("a", operation="Set-Mailbox", actor="Amy"),
        an_event("b", operation="Wipe device", actor="Bob", minutes_ago=1),
        an_event("c", operation="New-InboxRule", actor="Amy", minutes_ago=2),
    ]
    await store.upsert_events(events)

    assert await all_ids(store, operation="Wipe device") == [event_id_for("b")]
    assert await all_ids(store, actor="amy", operation=["Set-Mailbox", "New-InboxRule"]) == [
        event_id_for("a"),
        event_id_for("c"),
    ]
    assert await store.count_matching(EventFilters(actor_display="Bob")) == MatchCount(
        value=1, exact=True
    )
    assert (await store.count_matching(EventFilters(operation="Wipe device"))).value == 1
    assert (await store.count_matching(EventFilters(actor="amy"))).value == 2
    # A shared token never lets the search index decide a count alone; words still do.
    import sqlite3

    with contextlib.closing(sqlite3.connect(store.path)) as connection:  # type: ignore[attr-defined]
        for decided, filters in (
            (False, EventFilters(operation="Wipe device")),
            (False, EventFilters(actor="amy")),
            (True, EventFilters(search="mailbox")),
        ):
            assert sqlite_query.decided_by_index(connection, filters) is decided, filters
    await store.stop()


@only_on("embedded")
async def test_a_database_from_before_the_actor_table_is_backfilled_on_open(engine: Engine):
    import sqlite3

    store = engine.open()
    await store.start()
    await store.upsert_events([an_event("a", actor="Alice Admin"), an_event("b", actor="Bob")])
    await store.stop()
    path = store.path  # type: ignore[attr-defined]
    with sqlite3.connect(path) as connection:
        connection.execute("DROP TABLE event_actors")

    reopened = engine.open()
    await reopened.start()

    assert await all_ids(reopened, actor="ALICE") == [event_id_for("a")]
    assert (await reopened.filter_options()).actors == ["Alice Admin", "Bob"]


# A database written by AOC before schema 2 (one wide `events` table, FTS5 keeping its own copy).
LEGACY_SCHEMA = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, dedupe_key TEXT NOT NULL UNIQUE,
    timestamp_ms INTEGER NOT NULL, ingested_at_ms INTEGER NOT NULL, service TEXT NOT NULL,
    operation TEXT NOT NULL, result TEXT NOT NULL, source TEXT NOT NULL,
    actor_display TEXT NOT NULL, actor_lower TEXT NOT NULL, doc TEXT NOT NULL
);
CREATE INDEX events_newest_first ON events (timestamp_ms DESC, id DESC);
CREATE INDEX events_service ON events (service, timestamp_ms DESC, id DESC);
CREATE INDEX events_actor ON events (actor_display);
CREATE TABLE event_tags (tag TEXT NOT NULL, event_seq INTEGER NOT NULL,
    PRIMARY KEY (tag, event_seq)) WITHOUT ROWID;
CREATE VIRTUAL TABLE event_search USING fts5(terms, tokenize = 'ascii', detail = none);
CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@only_on("embedded")
async def test_a_database_of_the_previous_layout_is_moved_onto_the_new_one(
    engine: Engine, tmp_path: Path
):
    import sqlite3

    from aoc_common.query import timestamp_ms

    tagged = an_event("tagged", summary="Alice disabled forwarding", tags=["vip"], minutes_ago=1)
    plain = an_event("plain", service="Intune", actor="Bob Ops", comments=[a_comment()])
    path = tmp_path / "events.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.executescript(LEGACY_SCHEMA)
        for seq, event in ((7, tagged), (9, plain)):
            connection.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    seq,
                    event.id,
                    event.dedupe_key,
                    timestamp_ms(event.timestamp),
                    timestamp_ms(event.ingested_at),
                    event.service,
                    event.operation,
                    event.result,
                    event.source,
                    event.actor_display,
                    event.actor_display.lower(),
                    orjson.dumps(event.model_dump()).decode(),
                ),
            )
            connection.execute(
                "INSERT INTO event_search (rowid, terms) VALUES (?, ?)",
                (seq, " ".join(search_terms_for(event))),
            )
        connection.execute("INSERT INTO event_tags VALUES ('vip', 7)")
        connection.execute("INSERT INTO state VALUES ('watermark', '{\"at\": 1}')")

    store = SqliteEventStore(path)
    engine.opened.append(store)
    await store.start()

    assert await store.get_event(tagged.id) == tagged
    assert await store.get_event(plain.id) == plain
    assert await all_ids(store, search="forward") == [tagged.id]
    assert await all_ids(store, tags=["vip"]) == [tagged.id]
    assert await all_ids(store, actor="bob", category="ExchangeAdmin") == [plain.id]
    assert await store.get_state("watermark") == {"at": 1}
    # New events never reuse a seq, and the migrated ones update in place.
    assert await store.upsert_events([an_event("new", minutes_ago=2), tagged]) == UpsertResult(
        inserted=1, updated=1
    )
    assert (await store.get_event(tagged.id)).tags == ["vip"]  # type: ignore[union-attr]
    assert await all_ids(store, search="forward") == [tagged.id]


@only_on("embedded")
async def test_the_search_index_is_rebuilt_when_words_were_indexed_another_way(engine: Engine):
    import sqlite3

    store = engine.open()
    await store.start()
    await store.upsert_events([an_event("a", summary="quarantine released")])
    await store.stop()
    path = store.path  # type: ignore[attr-defined]
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("INSERT INTO event_search (event_search) VALUES ('delete-all')")
        connection.execute("UPDATE store_meta SET value = '0' WHERE key = 'search_text_version'")

    reopened = engine.open()
    await reopened.start()

    assert await all_ids(reopened, search="quarant") == [event_id_for("a")]


@only_on("embedded")
async def test_updates_and_purges_leave_no_words_behind(engine: Engine):
    store = engine.open(retention_days=1)
    await store.start()
    old = an_event(
        "old", summary="breakglass account used", ingested_at=utc_now() - timedelta(days=3)
    )
    await store.upsert_events([old, an_event("kept", summary="routine")])
    await store.upsert_events([an_event("kept", summary="renamed entirely")])

    assert await store.purge_expired() == 1
    assert await all_ids(store, search="breakglass") == []
    assert await all_ids(store, search="routine") == []
    assert await all_ids(store, search="renamed") == [event_id_for("kept")]
    assert await store.count_events() == 1


def _write_from_another_process(path: str, prefix: str, batches: int) -> None:
    """Run in a child process: upsert batches into the same SQLite file as the parent."""
    import asyncio

    async def write() -> None:
        store = SqliteEventStore(Path(path))
        await store.start()
        for batch in range(batches):
            await store.upsert_events(
                [an_event(f"{prefix}-{batch}-{n}", minutes_ago=n) for n in range(50)]
            )
        await store.stop()

    asyncio.run(write())


@only_on("embedded")
async def test_several_processes_write_and_read_one_database(engine: Engine):
    """The store sink may run in its own process beside the API: both write (upserts; tags) and
    both read, and no write is lost or torn."""
    import multiprocessing

    store = engine.open()
    await store.start()
    path = str(store.path)  # type: ignore[attr-defined]
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_write_from_another_process, args=(path, f"child{n}", 8))
        for n in range(2)
    ]
    for child in children:
        child.start()
    for batch in range(8):
        await store.upsert_events(
            [an_event(f"parent-{batch}-{n}", minutes_ago=n) for n in range(50)]
        )
        await store.count_matching(EventFilters(search="alice"))
    for child in children:
        child.join(timeout=120)
        assert child.exitcode == 0

    assert await store.count_events() == 3 * 8 * 50
    assert await store.count_matching(EventFilters(), limit=5000) == MatchCount(
        value=1200, exact=True
    )
    assert len(await all_ids(store, search="alice", page_size=500)) == 1200


@only_on("mongo")
async def test_mongo_actor_filter_with_very_many_matching_actors_tests_each_event(
    event_store: EventStore, monkeypatch: pytest.MonkeyPatch
):
    from aoc_common.event_store import mongo

    monkeypatch.setattr(mongo, "MAX_ACTORS_IN_FILTER", 2)
    events = [an_event(f"evt-{n}", minutes_ago=n, actor=f"Admin {n}") for n in range(5)]
    await event_store.upsert_events([*events, an_event("other", actor="Mallory")])

    assert await all_ids(event_store, actor="ADMIN") == ids_of(newest_first(events))
    assert await all_ids(event_store, actor="admin 3") == [events[3].id]


@only_on("embedded")
async def test_a_writer_finds_events_another_writer_stored_since_it_last_wrote(engine: Engine):
    """Each SQLite writer keeps its own map of stored ids: it must learn what the others insert,
    or a re-delivery through it would be stored twice."""
    first, second = engine.open(), engine.open()
    await first.start()
    await second.start()
    await first.upsert_events([an_event("a")])  # `first` has built its map now
    await second.upsert_events([an_event("b", summary="stored by the second writer")])

    again = an_event("b", summary="sent again through the first writer")
    assert await first.upsert_events([again, an_event("c")]) == UpsertResult(inserted=1, updated=1)
    assert await first.count_events() == 3
    stored = await second.get_event(again.id)
    assert stored is not None and stored.display_summary == "sent again through the first writer"


# A database written by the schema-2 layout (a dedupe-key hash column, an index per filter, a
# contentless FTS5 index of words only).
SCHEMA_2 = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, id_hash INTEGER NOT NULL,
    key_hash INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL, ingested_at_ms INTEGER NOT NULL,
    service TEXT NOT NULL, category TEXT NOT NULL, operation TEXT NOT NULL, result TEXT NOT NULL,
    source TEXT NOT NULL, actor_type TEXT NOT NULL, actor_display TEXT NOT NULL
);
CREATE INDEX events_by_time ON events (timestamp_ms, id);
CREATE INDEX events_by_key ON events (key_hash);
CREATE INDEX events_by_id ON events (id_hash);
CREATE INDEX events_by_operation ON events (operation, timestamp_ms, id);
CREATE TABLE event_docs (seq INTEGER PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE event_tags (tag TEXT NOT NULL, event_seq INTEGER NOT NULL,
    PRIMARY KEY (tag, event_seq)) WITHOUT ROWID;
CREATE VIRTUAL TABLE event_search USING fts5(
    terms, tokenize = 'ascii', detail = none, content = ''
);
CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO store_meta VALUES ('search_text_version', '1');
CREATE TABLE event_actors (actor_display TEXT PRIMARY KEY, actor_lower TEXT NOT NULL)
    WITHOUT ROWID;
PRAGMA user_version = 2;
"""


@only_on("embedded")
async def test_a_database_of_schema_2_is_upgraded_in_place(engine: Engine, tmp_path: Path):
    import sqlite3
    from hashlib import blake2b

    from aoc_common.query import timestamp_ms
    from aoc_common.search import event_search_text

    def old_hash(text: str) -> int:
        return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)

    events = [
        an_event("a", operation="Wipe device", actor="Amy", tags=["vip"]),
        an_event("b", minutes_ago=1, summary="quarantine released"),
    ]
    path = tmp_path / "events.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.executescript(SCHEMA_2)
        for seq, event in enumerate(events, start=1):
            connection.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    seq,
                    event.id,
                    old_hash(event.id),
                    old_hash(event.dedupe_key),
                    timestamp_ms(event.timestamp),
                    timestamp_ms(event.ingested_at),
                    event.service,
                    event.category,
                    event.operation,
                    event.result,
                    event.source,
                    event.actor.type,
                    event.actor_display,
                ),
            )
            connection.execute(
                "INSERT INTO event_docs VALUES (?, ?)", (seq, event.model_dump_json())
            )
            words = event_search_text(
                [
                    event.display_summary,
                    event.actor_display,
                    *event.target_displays,
                    event.operation,
                    event.service,
                    event.category,
                ],
                event.raw_text,
            )
            connection.execute(
                "INSERT INTO event_search (rowid, terms) VALUES (?, ?)", (seq, words)
            )
            connection.execute(
                "INSERT INTO event_actors VALUES (?, ?)",
                (event.actor_display, event.actor_display.lower()),
            )
        connection.execute("INSERT INTO event_tags VALUES ('vip', 1)")

    store = SqliteEventStore(path)
    engine.opened.append(store)
    await store.start()

    assert await store.get_event(events[0].id) == events[0]
    assert await all_ids(store, operation="Wipe device") == [events[0].id]
    assert await all_ids(store, search="quarant") == [events[1].id]
    assert await all_ids(store, tags=["vip"]) == [events[0].id]
    # The ids' hashes were recomputed: a re-delivery updates instead of storing a copy.
    assert await store.upsert_events(events) == UpsertResult(updated=2)
    assert await store.count_events() == 2
    with contextlib.closing(sqlite3.connect(path)) as connection:
        indexes = {
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
            )
        }
        assert indexes == {"events_by_time"}
        assert connection.execute("PRAGMA user_version").fetchone() == (3,)


def test_facet_rows_are_read_with_the_collector_paused_then_restored_as_it_was():
    import gc

    from aoc_common.event_store.sqlite_query import collector_paused

    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
