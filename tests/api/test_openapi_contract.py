"""The API keeps its OpenAPI document (issue 12, findings 2 and 6): schemathesis generates requests
from the document, valid and invalid, for every operation, and checks each answer: no 5xx, only
documented statuses, bodies that match their schema, invalid input refused, valid input accepted,
405 with `Allow` for methods the document does not list.

Bounded for CI: a fixed seed (derandomized), 30 examples per operation, in-process over ASGI
against a real SQLite store holding the demo's sample events, with a stand-in collector control
endpoint on loopback (so the two collection routes answer as in production).

One test per operation, built when it runs: schemathesis's `schema.parametrize()` builds every
operation's test (its coverage cases: ~25 s of CPU) while pytest collects, so each xdist worker
paid for all 31 operations; here only the worker that runs an operation builds it, with the same
builder, phases, checks, examples and seed. The cases drawn can differ from that build's, which
drew an operation's cases after those of the operations before it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.core.failures import FailureGroup, as_reported_failure
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.pytest._test_builder import build_operation_test
from schemathesis.python._constants.orchestrator import make_constants_value_source
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    negative_data_rejection,
    positive_data_acceptance,
)

from aoc_api.app import create_app
from aoc_common.event_store.sqlite import SqliteEventStore
from aoc_common.query import Cursor, InvalidCursor
from aoc_common.settings import Settings
from tests.utils.local_servers import serving
from tests.utils.records import fixture_events

EXAMPLES_PER_OPERATION = 30
SAMPLE_DATA = Path(__file__).resolve().parents[2] / "services" / "collector" / "sample_data"
LAST_MS_OF_2999 = 32_535_215_999_999

# The cursor is opaque: the document says so (`format: aoc-cursor`); valid ones are made here as
# the API makes them.
schemathesis.openapi.format(
    "aoc-cursor",
    st.builds(
        lambda ms, event_id: Cursor(timestamp_ms=ms, id=event_id).encode(),
        st.integers(min_value=0, max_value=LAST_MS_OF_2999),
        st.uuids().map(str),
    ),
)


def seeded_data_dir() -> Path:
    """A data directory whose store holds the sample events (made at collection: the schema, and
    so the app, must exist before pytest parametrizes the test)."""
    data_dir = Path(tempfile.mkdtemp(prefix="aoc-contract-"))

    async def seed() -> None:
        store = SqliteEventStore(data_dir / "events.sqlite3", retention_days=3650)
        await store.start()
        await store.upsert_events(fixture_events(SAMPLE_DATA))
        await store.stop()

    asyncio.run(seed())
    return data_dir


DATA_DIR = seeded_data_dir()
SETTINGS = Settings(
    data_dir=DATA_DIR, retention_days=3650, graph_webhook_client_state="contract-test-state"
)
APP = create_app(SETTINGS)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
OPERATIONS = [result.ok().label for result in schema.get_all_operations()]
# Values the app's code names (collected from the modules loaded now, as the plugin did).
FEEDBACK = FeedbackSources(constants_value_source=make_constants_value_source(schema))


def stand_in_collector() -> FastAPI:
    """The collector's control endpoint as the API uses it: a fetch, and a trigger."""
    collector = FastAPI()

    @collector.post("/fetch")
    async def fetch(hours: int) -> dict[str, Any]:
        return {"hours": hours, "sources": {"directory": {"fetched": 0}}}

    @collector.post("/trigger")
    async def trigger() -> dict[str, Any]:
        return {"triggered": True}

    return collector


@pytest.fixture(scope="module", autouse=True)
def collector_and_cleanup() -> Iterator[None]:
    with serving(stand_in_collector()) as url:
        APP.state.settings = SETTINGS.model_copy(update={"collector_url": url})
        yield
    shutil.rmtree(DATA_DIR, ignore_errors=True)


def _parses(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("z", "Z"))
    except ValueError:
        return None


def follow_cross_field_rules(case: schemathesis.Case) -> None:
    """What a schema cannot say: `end` is not before `start`, and a cursor is one the API handed
    out, for pages in the `order` asked. Valid (positive) queries are made to follow these rules;
    invalid ones keep their mistakes."""
    if case.meta is None or case.meta.is_negative_at(ParameterLocation.QUERY) or not case.query:
        return
    query = case.query
    if "cursor" in query:
        order = query.get("order", "newest")
        try:
            fits = Cursor.decode(str(query["cursor"])).order == order
        except InvalidCursor:
            fits = False
        if not fits:
            query["cursor"] = Cursor(timestamp_ms=0, id="contract", order=order).encode()
    start, end = _parses(query.get("start")), _parses(query.get("end"))
    if start and end and (start.tzinfo is None) == (end.tzinfo is None) and end < start:
        query["start"], query["end"] = query["end"], query["start"]


@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def check_operation(case: schemathesis.Case) -> None:
    follow_cross_field_rules(case)
    case.call_and_validate(excluded_checks=not_applicable_to(case))


@pytest.mark.parametrize("label", OPERATIONS)
def test_every_operation_keeps_its_documented_contract(label: str) -> None:
    operation = schema.find_operation_by_label(label)
    assert operation is not None, label
    test = build_operation_test(
        config=schema.config,
        operation=operation,
        test_func=check_operation,
        given_kwargs={},
        feedback=FEEDBACK,
    )
    try:
        test()
    except FailureGroup as failures:  # each failed check with the request that reproduces it
        raise as_reported_failure(failures) from None


def not_applicable_to(case: schemathesis.Case) -> list[Any]:
    """Three checks that cannot hold by construction, each for a reason a schema cannot state:
    Sigma YAML is valid only if it compiles (so schema-valid text may be refused);
    `/api/rules/sigma` is also a `/api/rules/{rule_id}` URL, whose methods its `Allow` lists too;
    and an invalid query value that is an object reaches the API as its keys only (`search=
    {"a": {}}` is sent as `search=a`), which may be valid, so accepting it is no fault."""
    excluded: list[Any] = []
    if (
        case.meta is not None
        and case.meta.is_negative_at(ParameterLocation.QUERY)
        and any(isinstance(value, dict) for value in (case.query or {}).values())
    ):
        excluded.append(negative_data_rejection)
    body = case.body if isinstance(case.body, dict) else {}
    if case.path.startswith("/api/rules") and (
        case.path == "/api/rules/sigma" or body.get("sigma") is not None
    ):
        excluded.append(positive_data_acceptance)
    if case.path == "/api/rules/sigma":
        excluded.append(allow_header_conformance)
    return excluded
