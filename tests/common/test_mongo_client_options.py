"""What an operator writes in MONGO_URI holds; AOC's bounded client defaults fill in only the rest.

Over the wire with the real driver: a database that cannot be reached shows which server selection
timeout applied, and on SecantusDB (or AOC_TEST_MONGO_URI) the server sees the URI's application name
and a query blocked by a `failCommand` failpoint hits the URI's socket timeout, not AOC's 15 s.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from aoc_common.event_store.base import StoreError
from aoc_common.event_store.mongo import MongoEventStore
from aoc_common.event_store.mongo_options import client_options
from aoc_common.query import EventQuery

COMMAND_NOT_FOUND = 59


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_options(uri: str, options: str) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}{options}"


async def start_error(store: MongoEventStore) -> str:
    try:
        with pytest.raises(StoreError) as raised:
            await store.start()
    finally:
        await store.stop()
    return str(raised.value)


async def test_a_server_selection_timeout_in_the_uri_wins_over_aocs_default() -> None:
    uri = f"mongodb://127.0.0.1:{closed_port()}/?serverSelectionTimeoutMS=200"

    message = await start_error(MongoEventStore(uri, "aoc"))  # AOC's default: 3000

    assert "Timeout: 0.2s" in message


async def test_a_uri_without_options_keeps_aocs_bounded_defaults() -> None:
    uri = f"mongodb://127.0.0.1:{closed_port()}"

    message = await start_error(MongoEventStore(uri, "aoc", server_selection_timeout_ms=250))

    assert "Timeout: 0.25s" in message
    assert "connectTimeoutMS: 250.0ms" in message


@pytest.fixture
def admin(mongo_uri: str) -> Iterator[MongoClient[dict[str, object]]]:
    client: MongoClient[dict[str, object]] = MongoClient(mongo_uri)
    try:
        yield client
    finally:
        client.close()


async def test_the_uri_application_name_and_socket_timeout_reach_the_server(
    mongo_uri: str, admin: MongoClient[dict[str, object]]
) -> None:
    app = f"aoc-{uuid.uuid4().hex[:8]}"
    store = MongoEventStore(
        with_options(mongo_uri, f"appName={app}&socketTimeoutMS=300"), f"t_{uuid.uuid4().hex[:12]}"
    )
    await store.start()
    try:
        operations = admin.admin.command("currentOp")["inprog"]
        names = {
            op.get("clientMetadata", {}).get("application", {}).get("name") for op in operations
        }
        assert app in names
        # Both the read and the driver's one retry of it wait 1 s for an answer: each times out first.
        block = {"failCommands": ["find"], "appName": app, "blockConnection": True}
        try:
            admin.admin.command(
                "configureFailPoint",
                "failCommand",
                mode={"times": 2},
                data=block | {"blockTimeMS": 1000},
            )
        except OperationFailure as error:
            if error.code != COMMAND_NOT_FOUND:
                raise
            pytest.skip("this MongoDB runs without enableTestCommands: no failpoints")
        try:
            with pytest.raises(StoreError, match="socketTimeoutMS: 300"):
                await store.query_events(EventQuery())
        finally:
            admin.admin.command("configureFailPoint", "failCommand", mode="off")
    finally:
        await store.stop()


@pytest.mark.parametrize(
    ("query", "keywords", "query_timeout_ms"),
    [
        (
            "",
            {"serverSelectionTimeoutMS", "connectTimeoutMS", "socketTimeoutMS", "appname"},
            15_000,
        ),
        # Case-insensitive, as pymongo reads them; a longer server selection lengthens the connect.
        (
            "SERVERSELECTIONTIMEOUTMS=10000",
            {"connectTimeoutMS", "socketTimeoutMS", "appname"},
            15_000,
        ),
        (
            "socketTimeoutMS=60000&appName=ops",
            {"serverSelectionTimeoutMS", "connectTimeoutMS"},
            60_000,
        ),
        # 0 is "no socket timeout": queries keep their bound on the server.
        ("socketTimeoutMS=0", {"serverSelectionTimeoutMS", "connectTimeoutMS", "appname"}, 15_000),
    ],
)
def test_only_what_the_uri_leaves_out_gets_a_default(
    query: str, keywords: set[str], query_timeout_ms: int
) -> None:
    # An SRV host that does not resolve: reading the options must not look it up.
    uri = with_options("mongodb+srv://cluster.example.invalid/", query) if query else "mongodb://h"

    options = client_options(uri, server_selection_timeout_ms=3000, operation_timeout_ms=15_000)

    assert set(options.keywords) == keywords | {"tz_aware"}
    assert options.query_timeout_ms == query_timeout_ms
    if query.startswith("SERVER"):
        assert options.keywords["connectTimeoutMS"] == 10_000
