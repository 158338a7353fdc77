"""Directory ids become names through Graph (a local fake on 127.0.0.1), batched, cached, and never at the
cost of an event: Graph down means the event is published with its ids and `enrichment: "pending"`."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from aoc_common import topics
from aoc_common.engines import Engines
from aoc_common.events import CanonicalEvent
from aoc_common.http_retry import RetryPolicy
from aoc_common.message_log.base import Message
from aoc_common.settings import ConfigurationError, Settings, load_settings
from aoc_normalizer.core import normalize_message
from aoc_normalizer.enrichment import Enricher, GraphDirectoryObjects, MemoryNameCache
from aoc_normalizer.mappings import Mappings, load_mappings
from aoc_normalizer.renormalize import renormalize, run_renormalize
from aoc_normalizer.runtime import Normalizer
from aoc_normalizer.state import SqliteNormalizerState
from tests.utils.fake_graph import FakeGraph, FakeTokens, directory_record, guid, serving
from tests.utils.records import FETCHED_AT, NOW, raw_record
from tests.utils.topic_io import read_topic

REPO = Path(__file__).resolve().parents[2]
FAST_RETRIES = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02)
ACTOR, TARGET = guid(1), guid(2)


@pytest.fixture(scope="module")
def mappings() -> Mappings:
    return load_mappings(REPO / "mappings.yml")


def bare_event(mappings: Mappings, record_id: str = "Directory_ids_only") -> CanonicalEvent:
    outcome = normalize_message(
        raw_record("directory", directory_record(record_id, actor_id=ACTOR, target_id=TARGET)),
        mappings,
        now=NOW,
    )
    assert isinstance(outcome, CanonicalEvent)
    return outcome


def known_graph() -> FakeGraph:
    graph = FakeGraph()
    graph.add_user(ACTOR, "Alice Admin", "alice.admin@contoso.com")
    graph.add_user(TARGET, "Member Seven", "member7@contoso.com")
    return graph


def lookup(client: httpx.AsyncClient, graph: FakeGraph, tokens: FakeTokens | None = None):
    return GraphDirectoryObjects(client, tokens or FakeTokens(), graph.url, FAST_RETRIES)


def test_without_enrichment_an_event_with_bare_ids_is_marked_off(mappings: Mappings) -> None:
    event = bare_event(mappings)
    assert event.enrichment == "off"
    assert event.actor_display == ACTOR
    assert event.display_summary == f"{ACTOR} updated user {TARGET}"


async def test_ids_are_named_through_graph_and_the_summary_reads_the_names(
    mappings: Mappings,
) -> None:
    async with serving(known_graph()) as graph, httpx.AsyncClient(timeout=5) as client:
        tokens = FakeTokens()
        enricher = Enricher(lookup(client, graph, tokens), MemoryNameCache())
        [event] = await enricher.enrich([bare_event(mappings)], mappings, NOW)
    assert event.enrichment == "complete"
    assert event.actor.display_name == "Alice Admin"
    assert event.actor.user_principal_name == "alice.admin@contoso.com"
    assert event.target_displays == ["Member Seven"]
    assert event.display_summary == "alice.admin@contoso.com updated user Member Seven"
    assert graph.calls == [[ACTOR, TARGET]]
    assert tokens.scopes[0] == f"{graph.url}/.default"


async def test_an_intune_event_whose_actor_is_only_an_object_id_gets_the_name(
    mappings: Mappings,
) -> None:
    raw = {
        "id": "f4c73f2b-0000-0000-0000-000000000001",
        "activityDateTime": "2026-11-20T10:00:00Z",
        "activityType": "Delete ManagedDevice",
        "activityResult": "Success",
        "category": "DeviceManagement",
        "actor": {"userId": ACTOR, "userPrincipalName": None},
        "resources": [{"displayName": "Laptop 42", "type": "ManagedDevice", "resourceId": "md-42"}],
    }
    event = normalize_message(raw_record("intune", raw), mappings, now=NOW)
    assert isinstance(event, CanonicalEvent) and event.enrichment == "off"
    async with serving(known_graph()) as graph, httpx.AsyncClient(timeout=5) as client:
        [named] = await Enricher(lookup(client, graph), MemoryNameCache()).enrich(
            [event], mappings, NOW
        )
    assert graph.calls == [[ACTOR]]  # the device is an Intune object, not a directory object
    assert named.enrichment == "complete"
    assert named.display_summary == "alice.admin@contoso.com deleted managed device Laptop 42"


async def test_a_sign_in_that_carries_only_the_user_id_gets_the_name(mappings: Mappings) -> None:
    raw = {
        "id": "5f3c2a1e-0000-0000-0000-000000000001",
        "createdDateTime": "2026-11-20T10:00:00Z",
        "userId": ACTOR,
        "appDisplayName": "Microsoft Teams",
        "ipAddress": "203.0.113.7",
        "status": {"errorCode": 0},
    }
    event = normalize_message(raw_record("signins", raw), mappings, now=NOW)
    assert isinstance(event, CanonicalEvent) and event.enrichment == "off"
    assert event.actor_display == ACTOR
    async with serving(known_graph()) as graph, httpx.AsyncClient(timeout=5) as client:
        [named] = await Enricher(lookup(client, graph), MemoryNameCache()).enrich(
            [event], mappings, NOW
        )
    assert graph.calls == [[ACTOR]]
    assert named.enrichment == "complete"
    assert named.actor_display == "alice.admin@contoso.com"
    assert "Microsoft Teams" in named.display_summary and ACTOR not in named.display_summary


async def test_thousands_of_ids_go_to_graph_in_batches_of_at_most_1000(
    mappings: Mappings,
) -> None:
    graph = FakeGraph()
    events = []
    for n in range(1250):
        actor, target = guid(10_000 + n), guid(20_000 + n)
        graph.add_user(target, f"User {n}", f"user{n}@contoso.com")
        record = directory_record(f"Directory_{n}", actor_id=actor, target_id=target)
        outcome = normalize_message(raw_record("directory", record), mappings, now=NOW)
        assert isinstance(outcome, CanonicalEvent)
        events.append(outcome)
    async with serving(graph), httpx.AsyncClient(timeout=10) as client:
        named = await Enricher(lookup(client, graph), MemoryNameCache()).enrich(
            events, mappings, NOW
        )
    assert [len(call) for call in graph.calls] == [1000, 1000, 500]
    assert len(named) == 1250
    # Actors Graph does not know were answered for (deleted objects): complete, shown by id.
    assert {e.enrichment for e in named} == {"complete"}
    assert named[7].target_displays == ["User 7"]
    assert named[7].actor_display == guid(10_007)


async def test_graph_down_publishes_the_event_with_its_ids_marked_pending(
    mappings: Mappings,
) -> None:
    graph = known_graph()
    graph.down = True
    async with serving(graph), httpx.AsyncClient(timeout=5) as client:
        [event] = await Enricher(lookup(client, graph), MemoryNameCache()).enrich(
            [bare_event(mappings)], mappings, NOW
        )
    assert event.enrichment == "pending"
    assert event.actor_display == ACTOR
    assert event.display_summary == f"{ACTOR} updated user {TARGET}"


async def test_after_a_graph_failure_batches_go_out_pending_at_once_for_a_while(
    mappings: Mappings,
) -> None:
    graph = known_graph()
    graph.down = True
    async with serving(graph), httpx.AsyncClient(timeout=5) as client:
        enricher = Enricher(
            lookup(client, graph), MemoryNameCache(), pause_after_failure=timedelta(minutes=1)
        )
        [first] = await enricher.enrich([bare_event(mappings)], mappings, NOW)
        assert (first.enrichment, graph.requests) == ("pending", 2)  # two attempts, then pending

        graph.down = False
        soon = NOW + timedelta(seconds=30)
        [paused] = await enricher.enrich([bare_event(mappings)], mappings, soon)
        assert (paused.enrichment, graph.requests) == ("pending", 2)  # Graph not asked

        later = NOW + timedelta(seconds=61)
        [named] = await enricher.enrich([bare_event(mappings)], mappings, later)
        assert (named.enrichment, graph.requests) == ("complete", 3)


async def test_an_expired_token_is_refreshed_once_and_the_call_retried(
    mappings: Mappings,
) -> None:
    graph = known_graph()
    graph.expired_tokens.add("token-1")
    tokens = FakeTokens()
    async with serving(graph), httpx.AsyncClient(timeout=5) as client:
        [event] = await Enricher(lookup(client, graph, tokens), MemoryNameCache()).enrich(
            [bare_event(mappings)], mappings, NOW
        )
    assert event.enrichment == "complete"
    assert tokens.issued == 2


async def test_cached_names_survive_a_restart_and_are_not_asked_again_within_the_ttl(
    mappings: Mappings, tmp_path: Path
) -> None:
    async with serving(known_graph()) as graph, httpx.AsyncClient(timeout=5) as client:
        first = SqliteNormalizerState(tmp_path / "normalizer.sqlite3")
        await Enricher(lookup(client, graph), first).enrich([bare_event(mappings)], mappings, NOW)
        first.close()

        restarted = SqliteNormalizerState(tmp_path / "normalizer.sqlite3")
        enricher = Enricher(lookup(client, graph), restarted, ttl=timedelta(hours=24))
        [again] = await enricher.enrich([bare_event(mappings)], mappings, NOW + timedelta(hours=1))
        assert again.enrichment == "complete" and again.target_displays == ["Member Seven"]
        assert len(graph.calls) == 1

        await enricher.enrich([bare_event(mappings)], mappings, NOW + timedelta(hours=25))
        assert len(graph.calls) == 2  # the TTL expired: asked again
        restarted.close()


async def test_renormalize_publishes_named_versions_of_pending_events(
    mappings: Mappings, engines: Engines, tmp_path: Path
) -> None:
    """Graph is down while the normalizer runs; once it is back, `renormalize` names the events."""
    graph = known_graph()
    graph.down = True
    message_log = engines.message_log
    settings = Settings(
        data_dir=tmp_path,
        enrichment_enabled=True,
        tenant_id="contoso",
        client_id="app",
        client_secret="secret",
    )
    stop = asyncio.Event()
    async with serving(graph), httpx.AsyncClient(timeout=5) as client:
        settings = settings.model_copy(update={"graph_base_url": graph.url})
        normalizer = Normalizer.from_settings(
            message_log, settings, tokens=FakeTokens(), graph_client=client
        )
        normalizer.enricher.lookup.policy = FAST_RETRIES  # type: ignore[union-attr]
        worker = asyncio.create_task(normalizer.run(stop))
        named_by_microsoft = raw_record("directory", record_with_names())
        bare = raw_record("directory", directory_record("Dir_B", actor_id=ACTOR, target_id=TARGET))
        await message_log.publish(
            topics.raw_topic("directory"),
            [Message(b"Dir_B", bare.value), Message(b"Dir_N", named_by_microsoft.value)],
        )
        pending = await read_topic(message_log, topics.EVENTS, 2)
        stop.set()
        await worker
        by_key = {r.key: orjson.loads(r.value) for r in pending}
        assert by_key[b"directory:Dir_B"]["enrichment"] == "pending"
        assert by_key[b"directory:Dir_N"]["enrichment"] == "complete"

        graph.down = False
        enricher = Enricher(lookup(client, graph), MemoryNameCache())
        report = await renormalize(message_log, mappings, enricher, since=FETCHED_AT)
    assert (report.records_read, report.republished, report.nothing_to_resolve) == (2, 1, 1)
    assert report.still_pending == 0
    versions = await read_topic(message_log, topics.EVENTS, 3)
    latest = orjson.loads(versions[-1].value)
    assert versions[-1].key == b"directory:Dir_B"
    assert latest["enrichment"] == "complete"
    assert latest["display_summary"] == "alice.admin@contoso.com updated user Member Seven"
    # The live normalizer's offsets were not touched: it has nothing left to do.
    assert await message_log.lag(topics.NORMALIZER_GROUP, topics.raw_topic("directory")) == 0


def record_with_names() -> dict:
    record = directory_record("Dir_N", actor_id=guid(7), target_id=guid(8))
    record["initiatedBy"]["user"]["userPrincipalName"] = "bob.secops@contoso.com"
    record["targetResources"][0]["userPrincipalName"] = "x@contoso.com"
    return record


def test_enrichment_without_the_app_registration_stops_start_up_naming_what_is_missing() -> None:
    with pytest.raises(ConfigurationError) as stopped:
        load_settings(enrichment_enabled=True, tenant_id="contoso", client_id=None)
    assert "ENRICHMENT_ENABLED=true needs TENANT_ID, CLIENT_ID and CLIENT_SECRET" in str(
        stopped.value.code
    )


async def test_renormalize_refuses_to_run_when_enrichment_is_not_configured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    since = FETCHED_AT
    assert await run_renormalize(Settings(data_dir=tmp_path), since) == 2
    assert "renormalize needs ENRICHMENT_ENABLED=true" in capsys.readouterr().err
