"""The production event store: MongoDB through motor.

Events live in one `events` collection keyed by the event id (`_id`), with a unique index on
`dedupe_key`, one index per filter that also serves the newest-first sort, a multikey index on the
precomputed `search_terms`, and a TTL index on `ingested_at` that applies retention by itself.

User input never becomes a query operator: filter values are compared as plain strings, the
actor filter is a `re.escape`d regular expression, and search tokens hold only letters and digits.
No `$where`, no `$text` (SecantusDB, the test engine, has no text indexes), and every call is
bounded: server selection and connecting by `server_selection_timeout_ms`, each network wait by
`operation_timeout_ms`, and queries on the server by the same `maxTimeMS`.
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
from aoc_common.events import CanonicalEvent, Comment, to_utc_millis
from aoc_common.query import (
    EventPage,
    EventQuery,
    FilterOptions,
    UpsertResult,
    page_from,
    search_terms_for,
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

EVENTS = "events"
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
# Exact-match filters: EventQuery field name == document field name.
EXACT_FILTERS = ("service", "operation", "result", "source")
OPTION_FIELDS = {
    "services": "service",
    "operations": "operation",
    "results": "result",
    "sources": "source",
    "actors": "actor_display",
}
NEWEST_FIRST = [("timestamp", DESCENDING), ("_id", DESCENDING)]


def event_indexes() -> list[IndexModel]:
    """Every index the events collection needs except the TTL one (see `_apply_retention`)."""
    return [
        IndexModel([("dedupe_key", ASCENDING)], name="dedupe_key_unique", unique=True),
        IndexModel(NEWEST_FIRST, name="newest_first"),
        *(
            IndexModel([(field, ASCENDING), *NEWEST_FIRST], name=f"{field}_newest_first")
            for field in EXACT_FILTERS
        ),
        IndexModel([("actor_display", ASCENDING)], name="actor_display"),
        IndexModel([("actor_lower", ASCENDING)], name="actor_lower"),
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


def mongo_filter(query: EventQuery) -> dict[str, Any]:
    """The find() filter for a query's filters and cursor (AND of every clause)."""
    clauses: list[dict[str, Any]] = []
    for field in EXACT_FILTERS:
        value = getattr(query, field)
        if value is not None:
            clauses.append({field: {"$eq": value}})
    if query.actor:
        clauses.append({"actor_lower": {"$regex": literal_regex(query.actor.lower())}})
    if query.start is not None:
        clauses.append({"timestamp": {"$gte": query.start}})
    if query.end is not None:
        clauses.append({"timestamp": {"$lte": query.end}})
    if query.tags:
        clauses.append({"tags": {"$all": list(dict.fromkeys(query.tags))}})
    for token in query.search_tokens:
        clauses.append({"search_terms": {"$regex": "^" + literal_regex(token)}})
    if query.cursor is not None:
        at = datetime_from_ms(query.cursor.timestamp_ms)
        clauses.append(
            {
                "$or": [
                    {"timestamp": {"$lt": at}},
                    {"timestamp": {"$eq": at}, "_id": {"$lt": query.cursor.id}},
                ]
            }
        )
    return {"$and": clauses} if clauses else {}


def document_for(event: CanonicalEvent) -> dict[str, Any]:
    """The stored document: the event with `id` as `_id`, plus the fields queries run on."""
    document = event.model_dump(exclude={"id"})
    document["_id"] = event.id
    document["search_terms"] = search_terms_for(event)
    document["actor_lower"] = event.actor_display.lower()
    return document


def upsert_for(event: CanonicalEvent) -> UpdateOne:
    """Replace what Microsoft reported; `_id`, tags and comments are only written on insert."""
    document = document_for(event)
    on_insert = {field: document.pop(field) for field in ("_id", "tags", "comments")}
    return UpdateOne(
        {"dedupe_key": event.dedupe_key},
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
        self._client: AsyncIOMotorClient[dict[str, Any]] | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, create every index and put the TTL index on the configured retention."""
        if self._client is None:
            with _store_errors("connect"):
                # Not `timeoutMS`: with it pymongo waits that long for a server too, and an
                # unreachable database must fail within the server selection timeout.
                self._client = AsyncIOMotorClient(
                    self._uri,
                    tz_aware=True,
                    serverSelectionTimeoutMS=self._server_selection_timeout_ms,
                    connectTimeoutMS=self._server_selection_timeout_ms,
                    socketTimeoutMS=self._operation_timeout_ms,
                    appname="aoc",
                )
        with _store_errors("create indexes"):
            await self._events.create_indexes(event_indexes())
            await self._apply_retention()
            await self._db[RULES].create_indexes(
                [IndexModel([("name", ASCENDING), ("_id", ASCENDING)], name="by_name")]
            )
            await self._db[ALERTS].create_indexes(alert_indexes())

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def ping(self) -> None:
        with _store_errors("ping"):
            await self._started().admin.command("ping")

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
        """One unordered bulk write; `updated` counts every key that already existed."""
        batch = dedupe_last_wins(events)
        if not batch:
            return UpsertResult()
        requests = [upsert_for(event) for event in batch]
        with _store_errors("upsert events"):
            try:
                result = await self._events.bulk_write(requests, ordered=False)
            except BulkWriteError as error:
                # Two writers inserting the same new key race on the unique index; the loser's
                # upsert now finds the winner's document, so one retry settles it.
                if not all(e.get("code") == DUPLICATE_KEY for e in error.details["writeErrors"]):
                    raise
                result = await self._events.bulk_write(requests, ordered=False)
        return UpsertResult(inserted=result.upserted_count, updated=result.matched_count)

    async def query_events(self, query: EventQuery) -> EventPage:
        if query.matches_nothing:
            return EventPage(items=[])
        with _store_errors("query events"):
            cursor = (
                self._events.find(mongo_filter(query), READ_PROJECTION)
                .sort(NEWEST_FIRST)
                .limit(query.page_size + 1)
                .max_time_ms(self._operation_timeout_ms)
            )
            documents = await cursor.to_list(length=query.page_size + 1)
        return page_from([event_from(document) for document in documents], query.page_size)

    async def get_event(self, event_id: str) -> CanonicalEvent | None:
        with _store_errors("read an event"):
            document = await self._events.find_one({"_id": {"$eq": event_id}}, READ_PROJECTION)
        return None if document is None else event_from(document)

    async def count_events(self) -> int:
        """From collection metadata, so O(1) however large the store (exact except for orphans
        in a sharded cluster or just after an unclean shutdown)."""
        with _store_errors("count events"):
            return int(await self._events.estimated_document_count())

    async def filter_options(self) -> FilterOptions:
        with _store_errors("list filter options"):
            names = [*OPTION_FIELDS, "tags"]
            values = await asyncio.gather(
                *(self._distinct(field) for field in OPTION_FIELDS.values()),
                self._distinct("tags", unwind=True),
            )
        return FilterOptions(**dict(zip(names, values, strict=True)))

    async def count_by_interval(
        self, query: EventQuery, start: datetime, interval_ms: int, buckets: int
    ) -> list[int]:
        """One aggregation: the indexed filter and window, then a group by interval number
        (a date minus a date is milliseconds in MongoDB)."""
        counts = [0] * buckets
        if query.matches_nothing or buckets < 1 or interval_ms < 1:
            return counts
        matching = mongo_filter(query.model_copy(update={"cursor": None}))
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
            cursor = self._events.aggregate(pipeline, maxTimeMS=self._operation_timeout_ms)
            for document in await cursor.to_list(length=buckets):
                counts[int(document["_id"])] = int(document["count"])
        return counts

    async def _distinct(self, field: str, *, unwind: bool = False) -> list[str]:
        """The first MAX_FILTER_OPTIONS distinct values, sorted (binary, as SQLite sorts)."""
        pipeline: list[dict[str, Any]] = [{"$unwind": f"${field}"}] if unwind else []
        pipeline += [
            {"$group": {"_id": f"${field}"}},
            {"$sort": {"_id": ASCENDING}},
            {"$limit": MAX_FILTER_OPTIONS},
        ]
        cursor = self._events.aggregate(pipeline, maxTimeMS=self._operation_timeout_ms)
        documents = await cursor.to_list(length=MAX_FILTER_OPTIONS)
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
                .max_time_ms(self._operation_timeout_ms)
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
        pipeline = [
            {"$group": {"_id": {f: f"${f}" for f in fields}, "count": {"$sum": 1}}},
        ]
        with _store_errors("count alerts"):
            cursor = self._db[ALERTS].aggregate(pipeline, maxTimeMS=self._operation_timeout_ms)
            groups = await cursor.to_list(length=None)
        return sorted_alert_counts(
            AlertCount(**group["_id"], count=group["count"]) for group in groups
        )
