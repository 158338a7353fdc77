"""The production event store: MongoDB through motor.

Events live in one `events` collection keyed by the event id (`_id`), with a unique index on
`dedupe_key`, one index per filter that also serves the time sort (either way), a multikey index
on the precomputed `search_terms`, and a TTL index on `ingested_at` that applies retention by
itself. `event_actors` holds every distinct actor once (`_id` the display name, `lower` its
lowercase), so the actor filter (a case-insensitive part of a name) scans actors, not events, and
then reads events through the `actor_display` index, as the SQLite store does.

User input never becomes a query operator: filter values are compared as plain strings (`$eq`,
`$in`, `$nin` of strings), the actor filter is a `re.escape`d regular expression, and search
tokens hold only letters and digits.
No `$where`, no `$text` (SecantusDB, the test engine, has no text indexes), and every call is
bounded: server selection and connecting by `server_selection_timeout_ms`, each network wait by
`operation_timeout_ms`, and queries on the server by the same `maxTimeMS`. Those are defaults: the
same options written in MONGO_URI win (mongo_options.py).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from bson.errors import BSONError
from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorCollection, AsyncIOMotorDatabase
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, PyMongoError

from aoc_common.event_store.base import (
    MAX_FILTER_OPTIONS,
    EventStore,
    StoreError,
    dedupe_last_wins,
)
from aoc_common.event_store.encoded import EncodedEvent
from aoc_common.event_store.mongo_options import client_options
from aoc_common.events import CanonicalEvent, Comment, to_utc_millis
from aoc_common.query import (
    DEFAULT_COUNT_LIMIT,
    DEFAULT_FACET_SAMPLE,
    FACET_FIELDS,
    VALUE_FILTERS,
    Cursor,
    EventFilters,
    EventPage,
    EventQuery,
    FacetCounts,
    FacetValue,
    FilterOptions,
    MatchCount,
    UpsertResult,
    check_count_limit,
    check_facet_request,
    page_from,
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
from aoc_common.search import event_terms

EVENTS = "events"
ACTORS = "event_actors"
STATE = "state"
RULES = "rules"
ALERTS = "alerts"
ALERTS_NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]
TTL_INDEX = "ingested_at_ttl"
DUPLICATE_KEY = 11000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Stored beside the event for querying only; never part of the CanonicalEvent read back.
QUERY_FIELDS = ("search_terms", "actor_lower")
READ_PROJECTION = dict.fromkeys(QUERY_FIELDS, 0)
# `VALUE_FILTERS` field -> document field (the actor type is nested in the actor).
FILTER_PATHS = {field: field for field in VALUE_FILTERS} | {"actor_type": "actor.type"}
# Facet field -> document field ("tags" is an array: one count per tag).
FACET_PATHS = {
    "service": "service",
    "operation": "operation",
    "result": "result",
    "actor": "actor_display",
    "category": "category",
    "source": "source",
    "actor_type": "actor.type",
    "tags": "tags",
}
OPTION_FIELDS = {
    "services": "service",
    "operations": "operation",
    "results": "result",
    "sources": "source",
}
NEWEST_FIRST = [("timestamp", DESCENDING), ("_id", DESCENDING)]
SORTS = {"newest": NEWEST_FIRST, "oldest": [("timestamp", ASCENDING), ("_id", ASCENDING)]}
AFTER = {"newest": "$lt", "oldest": "$gt"}
# More actors than this matching an actor filter: their events are common, and walking the time
# index testing `actor_lower` finds a page sooner than an `$in` of thousands of names.
MAX_ACTORS_IN_FILTER = 1_000
OBSOLETE_INDEXES = ("actor_display", "actor_lower")


def event_indexes() -> list[IndexModel]:
    """Every index the events collection needs except the TTL one (see `_apply_retention`)."""
    return [
        IndexModel([("dedupe_key", ASCENDING)], name="dedupe_key_unique", unique=True),
        IndexModel(NEWEST_FIRST, name="newest_first"),
        *(
            IndexModel([(path, ASCENDING), *NEWEST_FIRST], name=f"{field}_newest_first")
            for field, path in FILTER_PATHS.items()
        ),
        IndexModel([("tags", ASCENDING)], name="tags"),
        IndexModel([("search_terms", ASCENDING)], name="search_terms"),
    ]


def alert_indexes() -> list[IndexModel]:
    """Newest first, and per filter (status, rule, severity) followed by the same order."""
    return [
        IndexModel(ALERTS_NEWEST_FIRST, name="newest_first"),
        *(
            IndexModel([(field, ASCENDING), *ALERTS_NEWEST_FIRST], name=f"{field}_newest_first")
            for field in ("status", "rule_id", "severity")
        ),
    ]


def alert_document(alert: Alert) -> dict[str, Any]:
    document = alert.model_dump(exclude={"id"})
    document["_id"] = alert.id
    return document


def alert_from(document: Mapping[str, Any]) -> Alert:
    fields = dict(document)
    fields["id"] = fields.pop("_id")
    return Alert.model_validate(fields)


def rule_from(document: Mapping[str, Any]) -> Rule:
    fields = dict(document)
    fields["id"] = fields.pop("_id")
    return Rule.model_validate(fields)


def literal_regex(text: str) -> str:
    """A regular expression matching `text` literally, in both PCRE (MongoDB) and Python `re`.

    `re.escape` backslashes every metacharacter, which PCRE reads as the character itself; a NUL,
    which MongoDB refuses inside a pattern, becomes the `\\x00` escape that both dialects know.
    """
    return re.escape(text).replace("\x00", "\\x00")


def datetime_from_ms(value: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=value)


def mongo_filter(
    filters: EventFilters, *, cursor: Cursor | None = None, actors: list[str] | None = None
) -> dict[str, Any]:
    """The find() filter for filters and an optional cursor (AND of every clause).

    `actors`: the display names containing `filters.actor` (from `event_actors`), or None to test
    each event's `actor_lower` instead."""
    clauses: list[dict[str, Any]] = []
    for field, path in FILTER_PATHS.items():
        wanted = filters.values_of(field)
        if wanted:
            clauses.append({path: {"$in": wanted}})
        excluded = filters.excluded_of(field)
        if excluded:
            clauses.append({path: {"$nin": excluded}})
    if filters.actor:
        if actors is None:
            clauses.append({"actor_lower": {"$regex": literal_regex(filters.actor.lower())}})
        else:
            clauses.append({"actor_display": {"$in": actors}})
    if filters.start is not None:
        clauses.append({"timestamp": {"$gte": filters.start}})
    if filters.end is not None:
        clauses.append({"timestamp": {"$lte": filters.end}})
    if filters.tags:
        clauses.append({"tags": {"$all": filters.tags}})
    if filters.exclude_tags:
        clauses.append({"tags": {"$nin": filters.exclude_tags}})
    for token in filters.search_tokens:
        clauses.append({"search_terms": {"$regex": "^" + literal_regex(token)}})
    if cursor is not None:
        at = datetime_from_ms(cursor.timestamp_ms)
        after = AFTER[cursor.order]
        clauses.append(
            {
                "$or": [
                    {"timestamp": {after: at}},
                    {"timestamp": {"$eq": at}, "_id": {after: cursor.id}},
                ]
            }
        )
    return {"$and": clauses} if clauses else {}


def document_for(event: EncodedEvent) -> dict[str, Any]:
    """The stored document: the event as published with `id` as `_id`, BSON dates for its
    timestamps, plus the fields queries run on."""
    fields = event.fields
    document: dict[str, Any] = orjson.loads(event.json)
    document["_id"] = document.pop("id")
    document["timestamp"] = fields.timestamp
    document["ingested_at"] = fields.ingested_at
    document["comments"] = [
        Comment.model_validate(comment).model_dump() for comment in document.get("comments", [])
    ]
    document.setdefault("tags", [])
    document["search_terms"] = event_terms(fields.text_fields, fields.raw_text)
    document["actor_lower"] = fields.actor_display.lower()
    return document


def upsert_for(event: EncodedEvent) -> UpdateOne:
    """Replace what Microsoft reported; `_id`, tags and comments are only written on insert."""
    document = document_for(event)
    on_insert = {field: document.pop(field) for field in ("_id", "tags", "comments")}
    return UpdateOne(
        {"dedupe_key": event.fields.dedupe_key},
        {"$set": document, "$setOnInsert": on_insert},
        upsert=True,
    )


def event_from(document: Mapping[str, Any]) -> CanonicalEvent:
    fields = {key: value for key, value in document.items() if key not in QUERY_FIELDS}
    fields["id"] = fields.pop("_id")
    return CanonicalEvent.model_validate(fields)


@contextmanager
def _store_errors(action: str) -> Iterator[None]:
    """Driver and encoding errors leave the store as StoreError, with what was being done."""
    try:
        yield
    except (PyMongoError, BSONError) as error:
        raise StoreError(f"mongo event store could not {action}: {error}") from error


class MongoEventStore(EventStore):
    """Events in MongoDB: `events` and `state` collections in one database."""

    engine = "mongo"

    def __init__(
        self,
        uri: str,
        db_name: str,
        *,
        retention_days: int = 90,
        server_selection_timeout_ms: int = 3000,
        operation_timeout_ms: int = 15_000,
    ) -> None:
        self.db_name = db_name
        self.retention_days = retention_days
        self._uri = uri
        self._server_selection_timeout_ms = server_selection_timeout_ms
        self._operation_timeout_ms = operation_timeout_ms
        self._query_timeout_ms = operation_timeout_ms  # the URI's socketTimeoutMS once started
        self._client: AsyncIOMotorClient[dict[str, Any]] | None = None
        # Actors already in `event_actors` (never removed, so true whatever other writers do).
        self._known_actors: set[str] = set()

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, create every index and put the TTL index on the configured retention."""
        if self._client is None:
            with _store_errors("connect"):
                # Not `timeoutMS` by default: with it pymongo waits that long for a server too,
                # and an unreachable database must fail within the server selection timeout.
                options = client_options(
                    self._uri,
                    server_selection_timeout_ms=self._server_selection_timeout_ms,
                    operation_timeout_ms=self._operation_timeout_ms,
                )
                self._query_timeout_ms = options.query_timeout_ms
                self._client = AsyncIOMotorClient(self._uri, **options.keywords)
        with _store_errors("create indexes"):
            await self._drop_obsolete_indexes()
            await self._events.create_indexes(event_indexes())
            await self._apply_retention()
            await self._db[RULES].create_indexes(
                [IndexModel([("name", ASCENDING), ("_id", ASCENDING)], name="by_name")]
            )
            await self._db[ALERTS].create_indexes(alert_indexes())
            await self._backfill_actors()

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def ping(self) -> None:
        with _store_errors("ping"):
            await self._started().admin.command("ping")

    async def _drop_obsolete_indexes(self) -> None:
        """Indexes of earlier AOC versions that no query uses any more cost every write."""
        existing = await self._events.index_information()
        for name in OBSOLETE_INDEXES:
            if name in existing:
                await self._events.drop_index(name)

    async def _backfill_actors(self) -> None:
        """A database from before `event_actors` existed gets it filled once, from the events."""
        if await self._db[ACTORS].estimated_document_count():
            return
        actors = await self._distinct("actor_display", limit=None)
        await self._remember_actors(set(actors))

    async def _apply_retention(self) -> None:
        """Create the TTL index, or change its period in place (collMod) when retention changed."""
        seconds = self.retention_days * 86_400
        existing = (await self._events.index_information()).get(TTL_INDEX)
        if existing is None:
            await self._events.create_index(
                [("ingested_at", ASCENDING)], name=TTL_INDEX, expireAfterSeconds=seconds
            )
        elif existing.get("expireAfterSeconds") != seconds:
            await self._db.command(
                "collMod", EVENTS, index={"name": TTL_INDEX, "expireAfterSeconds": seconds}
            )

    def _started(self) -> AsyncIOMotorClient[dict[str, Any]]:
        if self._client is None:
            raise StoreError("the mongo event store is not started")
        return self._client

    @property
    def _db(self) -> AsyncIOMotorDatabase[dict[str, Any]]:
        return self._started()[self.db_name]

    @property
    def _events(self) -> AsyncIOMotorCollection[dict[str, Any]]:
        return self._db[EVENTS]

    # --- events ----------------------------------------------------------------------------------

    async def upsert_events(self, events: Sequence[CanonicalEvent]) -> UpsertResult:
        return await self.upsert_encoded([EncodedEvent.of(event) for event in events])

    async def upsert_encoded(self, events: Sequence[EncodedEvent]) -> UpsertResult:
        """One unordered bulk write (the server applies it in parallel and one refused event
        does not stop the rest); `updated` counts every key that already existed."""
        batch = dedupe_last_wins(events)
        if not batch:
            return UpsertResult()
        requests = [upsert_for(event) for event in batch]
        actors = {event.fields.actor_display for event in batch}
        with _store_errors("upsert events"):
            try:
                result = await self._events.bulk_write(requests, ordered=False)
            except BulkWriteError as error:
                # Two writers inserting the same new key race on the unique index; the loser's
                # upsert now finds the winner's document, so one retry settles it.
                if not all(e.get("code") == DUPLICATE_KEY for e in error.details["writeErrors"]):
                    raise
                result = await self._events.bulk_write(requests, ordered=False)
            await self._remember_actors(actors)
        return UpsertResult(inserted=result.upserted_count, updated=result.matched_count)

    async def _remember_actors(self, actors: set[str]) -> None:
        """Add new actors to `event_actors` (one unordered bulk write of upserts, only for actors
        this store has not recorded yet)."""
        actors = actors - self._known_actors
        if not actors:
            return
        requests = [
            UpdateOne({"_id": actor}, {"$setOnInsert": {"lower": actor.lower()}}, upsert=True)
            for actor in sorted(actors)
        ]
        try:
            await self._db[ACTORS].bulk_write(requests, ordered=False)
        except BulkWriteError as error:
            # Another sink added the same new actor first: it is there, which is all we want.
            if not all(e.get("code") == DUPLICATE_KEY for e in error.details["writeErrors"]):
                raise
        self._known_actors |= actors

    async def _actors_containing(self, part: str) -> list[str] | None:
        """Display names containing `part` (any case), or None when there are so many that
        testing each event is the better plan (see MAX_ACTORS_IN_FILTER)."""
        cursor = self._db[ACTORS].find(
            {"lower": {"$regex": literal_regex(part.lower())}}, {"_id": 1}
        )
        cursor = cursor.limit(MAX_ACTORS_IN_FILTER + 1).max_time_ms(self._query_timeout_ms)
        documents = await cursor.to_list(length=MAX_ACTORS_IN_FILTER + 1)
        if len(documents) > MAX_ACTORS_IN_FILTER:
            return None
        return [document["_id"] for document in documents]

    async def _filter(self, filters: EventFilters, cursor: Cursor | None = None) -> dict[str, Any]:
        actors = await self._actors_containing(filters.actor) if filters.actor else None
        return mongo_filter(filters, cursor=cursor, actors=actors)

    async def query_events(self, query: EventQuery) -> EventPage:
        if query.matches_nothing:
            return EventPage(items=[])
        with _store_errors("query events"):
            cursor = (
                self._events.find(await self._filter(query, query.cursor), READ_PROJECTION)
                .sort(SORTS[query.order])
                .limit(query.page_size + 1)
                .max_time_ms(self._query_timeout_ms)
            )
            documents = await cursor.to_list(length=query.page_size + 1)
        return page_from(
            [event_from(document) for document in documents], query.page_size, query.order
        )

    async def get_event(self, event_id: str) -> CanonicalEvent | None:
        with _store_errors("read an event"):
            document = await self._events.find_one({"_id": {"$eq": event_id}}, READ_PROJECTION)
        return None if document is None else event_from(document)

    async def count_events(self) -> int:
        """From collection metadata, so O(1) however large the store (exact except for orphans
        in a sharded cluster or just after an unclean shutdown)."""
        with _store_errors("count events"):
            return int(await self._events.estimated_document_count())

    async def count_matching(
        self, filters: EventFilters, limit: int = DEFAULT_COUNT_LIMIT
    ) -> MatchCount:
        check_count_limit(limit)
        if filters.matches_nothing:
            return MatchCount(value=0, exact=True)
        with _store_errors("count events"):
            found = await self._events.count_documents(
                await self._filter(filters), limit=limit + 1, maxTimeMS=self._query_timeout_ms
            )
        if found > limit:
            return MatchCount(value=limit, exact=False)
        return MatchCount(value=found, exact=True)

    async def facet_counts(
        self,
        filters: EventFilters,
        fields: Sequence[str] = FACET_FIELDS,
        top: int = 10,
        sample: int | None = DEFAULT_FACET_SAMPLE,
    ) -> FacetCounts:
        """One aggregation: the filter, the newest `sample` matches (skipped when every match
        fits), then a `$facet` with one group per field."""
        check_facet_request(fields, top, sample)
        wanted = list(dict.fromkeys(fields))
        if filters.matches_nothing:
            return FacetCounts(facets={field: [] for field in wanted}, counted=0, complete=True)
        complete = sample is None or (await self.count_matching(filters, sample)).exact
        pipeline: list[dict[str, Any]] = [{"$match": await self._filter(filters)}]
        if not complete:
            pipeline += [{"$sort": dict(NEWEST_FIRST)}, {"$limit": sample}]
        groups: dict[str, list[dict[str, Any]]] = {"counted": [{"$count": "n"}]}
        for index, field in enumerate(wanted):
            path = FACET_PATHS[field]
            unwind: list[dict[str, Any]] = [{"$unwind": f"${path}"}] if field == "tags" else []
            groups[f"f{index}"] = [
                *unwind,
                {"$group": {"_id": f"${path}", "count": {"$sum": 1}}},
                {"$sort": {"count": DESCENDING, "_id": ASCENDING}},
                {"$limit": top},
            ]
        pipeline.append({"$facet": groups})
        with _store_errors("count facet values"):
            cursor = self._events.aggregate(pipeline, maxTimeMS=self._query_timeout_ms)
            (result,) = await cursor.to_list(length=1)
        counted = result["counted"][0]["n"] if result["counted"] else 0
        facets = {
            field: [
                FacetValue(value=group["_id"], count=group["count"])
                for group in result[f"f{index}"]
            ]
            for index, field in enumerate(wanted)
        }
        return FacetCounts(facets=facets, counted=counted, complete=complete)

    async def filter_options(self) -> FilterOptions:
        with _store_errors("list filter options"):
            names = [*OPTION_FIELDS, "actors", "tags"]
            values = await asyncio.gather(
                *(self._distinct(field) for field in OPTION_FIELDS.values()),
                self._distinct("actor_display"),
                self._distinct("tags", unwind=True),
            )
        return FilterOptions(**dict(zip(names, values, strict=True)))

    async def count_by_interval(
        self, filters: EventFilters, start: datetime, interval_ms: int, buckets: int
    ) -> list[int]:
        """One aggregation: the indexed filter and window, then a group by interval number
        (a date minus a date is milliseconds in MongoDB)."""
        counts = [0] * max(buckets, 0)
        if filters.matches_nothing or buckets < 1 or interval_ms < 1:
            return counts
        with _store_errors("count events by interval"):
            matching = await self._filter(filters)
        end = start + timedelta(milliseconds=interval_ms) * buckets
        window = {"timestamp": {"$gte": start, "$lt": end}}
        pipeline: list[dict[str, Any]] = [
            {"$match": {"$and": [matching, window]} if matching else window},
            {
                "$group": {
                    "_id": {
                        "$floor": {"$divide": [{"$subtract": ["$timestamp", start]}, interval_ms]}
                    },
                    "count": {"$sum": 1},
                }
            },
        ]
        with _store_errors("count events by interval"):
            cursor = self._events.aggregate(pipeline, maxTimeMS=self._query_timeout_ms)
            for document in await cursor.to_list(length=buckets):
                counts[int(document["_id"])] = int(document["count"])
        return counts

    async def _distinct(
        self, field: str, *, unwind: bool = False, limit: int | None = MAX_FILTER_OPTIONS
    ) -> list[str]:
        """The first `limit` distinct values (all when None), sorted (binary, as SQLite sorts)."""
        pipeline: list[dict[str, Any]] = [{"$unwind": f"${field}"}] if unwind else []
        pipeline += [{"$group": {"_id": f"${field}"}}, {"$sort": {"_id": ASCENDING}}]
        if limit is not None:
            pipeline.append({"$limit": limit})
        cursor = self._events.aggregate(pipeline, maxTimeMS=self._query_timeout_ms)
        documents = await cursor.to_list(length=limit)
        return [document["_id"] for document in documents]

    async def set_tags(self, event_id: str, tags: Sequence[str]) -> CanonicalEvent | None:
        return await self._change(event_id, {"$set": {"tags": list(dict.fromkeys(tags))}})

    async def add_comment(self, event_id: str, comment: Comment) -> CanonicalEvent | None:
        return await self._change(event_id, {"$push": {"comments": comment.model_dump()}})

    async def _change(self, event_id: str, update: dict[str, Any]) -> CanonicalEvent | None:
        with _store_errors("change an event"):
            document = await self._events.find_one_and_update(
                {"_id": {"$eq": event_id}},
                update,
                projection=READ_PROJECTION,
                return_document=ReturnDocument.AFTER,
            )
        return None if document is None else event_from(document)

    async def purge_expired(self, now: datetime | None = None) -> int:
        """MongoDB's TTL monitor deletes expired events by itself; nothing to do here."""
        return 0

    # --- state -----------------------------------------------------------------------------------

    async def get_state(self, key: str) -> dict[str, Any] | None:
        with _store_errors("read state"):
            document = await self._db[STATE].find_one({"_id": {"$eq": key}})
        if document is None:
            return None
        value: dict[str, Any] = document["value"]
        return value

    async def put_state(self, key: str, value: dict[str, Any]) -> None:
        """Stored as its JSON round trip, so both stores hand back exactly the same values."""
        as_json = orjson.loads(orjson.dumps(value))
        with _store_errors("write state"):
            await self._db[STATE].replace_one({"_id": key}, {"value": as_json}, upsert=True)

    # --- rules and alerts ------------------------------------------------------------------------

    async def list_rules(self) -> list[Rule]:
        with _store_errors("list rules"):
            cursor = self._db[RULES].find({}).sort([("name", ASCENDING), ("_id", ASCENDING)])
            documents = await cursor.to_list(length=None)
        return [rule_from(document) for document in documents]

    async def get_rule(self, rule_id: str) -> Rule | None:
        with _store_errors("read a rule"):
            document = await self._db[RULES].find_one({"_id": {"$eq": rule_id}})
        return None if document is None else rule_from(document)

    async def put_rule(self, rule: Rule) -> None:
        document = rule.model_dump(exclude={"id"})
        with _store_errors("write a rule"):
            await self._db[RULES].replace_one({"_id": rule.id}, document, upsert=True)

    async def delete_rule(self, rule_id: str) -> bool:
        with _store_errors("delete a rule"):
            result = await self._db[RULES].delete_one({"_id": {"$eq": rule_id}})
        return bool(result.deleted_count)

    async def insert_alerts(self, alerts: Sequence[Alert]) -> list[str]:
        """Upserts with `$setOnInsert` only: an existing alert (maybe acknowledged) is untouched."""
        batch = list({alert.id: alert for alert in alerts}.values())
        if not batch:
            return []
        requests = [
            UpdateOne({"_id": alert.id}, {"$setOnInsert": alert_document(alert)}, upsert=True)
            for alert in batch
        ]
        with _store_errors("insert alerts"):
            try:
                result = await self._db[ALERTS].bulk_write(requests, ordered=False)
            except BulkWriteError as error:
                # Two alerters inserting the same new id race on _id; the loser's upsert now
                # finds the winner's document, so one retry settles it.
                if not all(e.get("code") == DUPLICATE_KEY for e in error.details["writeErrors"]):
                    raise
                result = await self._db[ALERTS].bulk_write(requests, ordered=False)
        return [batch[index].id for index in sorted(result.upserted_ids)]

    async def existing_alert_ids(self, alert_ids: Sequence[str]) -> set[str]:
        ids = list(dict.fromkeys(alert_ids))
        if not ids:
            return set()
        with _store_errors("look up alerts"):
            cursor = self._db[ALERTS].find({"_id": {"$in": ids}}, {"_id": 1})
            documents = await cursor.to_list(length=len(ids))
        return {document["_id"] for document in documents}

    async def query_alerts(self, query: AlertQuery) -> AlertPage:
        clauses: list[dict[str, Any]] = [
            {field: {"$eq": getattr(query, field)}}
            for field in ("status", "severity", "rule_id")
            if getattr(query, field) is not None
        ]
        if query.cursor is not None:
            at = datetime_from_ms(query.cursor.timestamp_ms)
            clauses.append(
                {
                    "$or": [
                        {"created_at": {"$lt": at}},
                        {"created_at": {"$eq": at}, "_id": {"$lt": query.cursor.id}},
                    ]
                }
            )
        with _store_errors("query alerts"):
            cursor = (
                self._db[ALERTS]
                .find({"$and": clauses} if clauses else {})
                .sort(ALERTS_NEWEST_FIRST)
                .limit(query.page_size + 1)
                .max_time_ms(self._query_timeout_ms)
            )
            documents = await cursor.to_list(length=query.page_size + 1)
        return alert_page_from([alert_from(document) for document in documents], query.page_size)

    async def get_alert(self, alert_id: str) -> Alert | None:
        with _store_errors("read an alert"):
            document = await self._db[ALERTS].find_one({"_id": {"$eq": alert_id}})
        return None if document is None else alert_from(document)

    async def acknowledge_alert(self, alert_id: str, by: str, at: datetime) -> Alert | None:
        acknowledged = to_utc_millis(at)
        with _store_errors("acknowledge an alert"):
            document = await self._db[ALERTS].find_one_and_update(
                {"_id": {"$eq": alert_id}, "status": "open"},
                {
                    "$set": {
                        "status": "acknowledged",
                        "acknowledged_by": by,
                        "acknowledged_at": acknowledged,
                    }
                },
                return_document=ReturnDocument.AFTER,
            )
            if document is None:
                document = await self._db[ALERTS].find_one({"_id": {"$eq": alert_id}})
        return None if document is None else alert_from(document)

    async def alert_counts(self) -> list[AlertCount]:
        fields = ("rule_id", "rule_name", "severity", "status")
        pipeline = [{"$group": {"_id": {f: f"${f}" for f in fields}, "count": {"$sum": 1}}}]
        with _store_errors("count alerts"):
            cursor = self._db[ALERTS].aggregate(pipeline, maxTimeMS=self._query_timeout_ms)
            groups = await cursor.to_list(length=None)
        return sorted_alert_counts(
            AlertCount(**group["_id"], count=group["count"]) for group in groups
        )
