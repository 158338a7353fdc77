"""The live collector against the local Microsoft stand-in: paging, windows, watermarks, retries."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import httpx

from aoc_collector.core import watermark_key
from aoc_collector.fake_microsoft import FakeMicrosoft, Fault
from aoc_collector.service import serve_collector
from aoc_common.engines import Engines
from aoc_common.message_log.base import Message, MessageLogError
from aoc_common.message_log.embedded import EmbeddedMessageLog
from aoc_common.source_health import read_source_health
from tests.utils.collector import Harness, build_harness
from tests.utils.expected import UNIQUE_RECORDS
from tests.utils.local_servers import free_port
from tests.utils.topic_io import raw_keys


async def test_first_run_publishes_every_fixture_record_once_following_every_page(
    harness: Harness,
) -> None:
    report = await harness.make().run()

    assert {r.source: (r.status, r.count) for r in report.sources} == {
        s: ("ok", n) for s, n in UNIQUE_RECORDS.items()
    }
    for source, expected in UNIQUE_RECORDS.items():
        keys = await raw_keys(harness.message_log, source, expected)
        assert len(keys) == expected == len(set(keys)), source
    # Graph pages were followed through @odata.nextLink with the window as $filter and a big $top.
    directory = harness.fake.hits("auditLogs/directoryAudits")
    assert len(directory) == 3
    first = directory[0].query
    assert first["$top"] == "999"
    assert first["$filter"].startswith("activityDateTime ge ")
    assert "$skiptoken" in directory[1].query
    # Four subscriptions started, content listed per type in windows of at most 24 hours,
    # NextPageUri followed (one item per page in the fake), each of the 8 blobs fetched once.
    assert harness.fake.enabled_subscriptions == {
        "Audit.AzureActiveDirectory",
        "Audit.Exchange",
        "Audit.SharePoint",
        "Audit.General",
    }
    listings = harness.fake.hits("/subscriptions/content")
    assert any("nextPage" in r.query for r in listings)
    assert all(r.query["PublisherIdentifier"] == harness.fake.tenant_id for r in listings)
    assert len(harness.fake.hits("/activity/feed/audit/")) == 8


async def test_overlapping_runs_publish_each_record_exactly_once(harness: Harness) -> None:
    collector = harness.make()
    await collector.run()
    first_watermark = (await harness.store.get_state(watermark_key("directory")))["watermark"]
    harness.clock.advance(timedelta(hours=1))

    second = await collector.run()

    assert {r.source: r.count for r in second.sources} == {s: 0 for s in UNIQUE_RECORDS}
    for source, expected in UNIQUE_RECORDS.items():
        keys = await raw_keys(harness.message_log, source, expected)
        assert len(keys) == expected == len(set(keys)), source
    # The second Graph window starts 15 minutes (the overlap) before the first run's end.
    last_filter = harness.fake.hits("auditLogs/directoryAudits")[-1].query["$filter"]
    overlap_start = (harness.clock() - timedelta(hours=1) - timedelta(minutes=15)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert last_filter.startswith(f"activityDateTime ge {overlap_start}")
    assert (
        first_watermark != (await harness.store.get_state(watermark_key("directory")))["watermark"]
    )
    assert len(harness.fake.hits("/activity/feed/audit/")) == 8  # no blob fetched twice


async def test_retry_after_of_a_throttled_page_is_honoured(harness: Harness) -> None:
    harness.fake.inject(Fault(match="directoryAudits?$skiptoken", status=429, retry_after=7))
    harness.fake.inject(Fault(match="/subscriptions/content", status=503, retry_after=3))

    report = await harness.make().run()

    assert [r.status for r in report.sources] == ["ok"] * len(UNIQUE_RECORDS)
    assert 7.0 in harness.sleep.waits and 3.0 in harness.sleep.waits
    assert len(await raw_keys(harness.message_log, "directory", 60)) == 60


async def test_a_server_error_once_is_retried_with_backoff_and_loses_nothing(
    harness: Harness,
) -> None:
    harness.fake.inject(Fault(match="deviceManagement/auditEvents", status=500))

    report = await harness.make().run()

    assert {r.source: r.count for r in report.sources}["intune"] == 30
    assert len(harness.fake.hits("deviceManagement/auditEvents")) == 3  # 500, then two pages
    assert harness.sleep.waits and all(0 <= w <= 0.01 for w in harness.sleep.waits)


async def test_an_expired_token_is_refreshed_once_and_the_page_retried(harness: Harness) -> None:
    harness.fake.inject(Fault(match="directoryAudits", kind="expired_token"))

    report = await harness.make().run(["directory"])

    assert report.sources[0].status == "ok" and report.sources[0].count == 60
    assert harness.fake.tokens_issued == 2  # the first token, then one new token after the 401


async def test_a_page_failing_after_retries_stops_the_source_and_keeps_its_watermark(
    harness: Harness,
) -> None:
    collector = harness.make()
    await collector.run()
    before = await harness.store.get_state(watermark_key("directory"))
    harness.clock.advance(timedelta(hours=2))
    harness.fake.inject(Fault(match="auditLogs/directoryAudits", status=500, times=99))

    report = await collector.run()

    runs = {r.source: r for r in report.sources}
    assert runs["directory"].status == "error"
    assert "HTTP 500" in (runs["directory"].error or "")
    assert runs["intune"].status == runs["unified"].status == "ok"
    assert await harness.store.get_state(watermark_key("directory")) == before
    health = {h.source: h for h in await read_source_health(harness.store)}
    assert health["directory"].status == "error"
    assert "failed after 4 attempts: HTTP 500" in (health["directory"].last_error or "")
    assert health["directory"].last_success_at is not None
    assert health["directory"].last_success_at < health["directory"].last_run_at  # type: ignore[operator]
    assert health["intune"].status == "ok" and health["intune"].last_error is None


async def test_a_failed_second_page_is_read_again_next_run_so_nothing_is_skipped(
    harness: Harness,
) -> None:
    collector = harness.make()
    harness.fake.inject(Fault(match="directoryAudits?$skiptoken", status=500, times=4))

    failed = await collector.run(["directory"])
    assert failed.sources[0].status == "error" and failed.sources[0].count == 25
    assert await harness.store.get_state(watermark_key("directory")) is None

    harness.clock.advance(timedelta(minutes=5))
    retried = await collector.run(["directory"])

    assert retried.sources[0].status == "ok"
    keys = await raw_keys(harness.message_log, "directory", 60)
    assert len(set(keys)) == 60  # the first page again (deduped downstream), and every other page


async def test_a_wrong_client_secret_is_one_clear_error_per_source(harness: Harness) -> None:
    report = await harness.make(client_secret="not-the-secret").run()

    for run in report.sources:
        assert run.status == "error"
        assert "invalid_client: AADSTS7000215: Invalid client secret provided" in (run.error or "")
        assert "not-the-secret" not in (run.error or "")
    health = await read_source_health(harness.store)
    assert {h.status for h in health} == {"error"}


async def test_missing_credentials_are_named_in_source_health(harness: Harness) -> None:
    report = await harness.make(client_secret=None, tenant_id=None).run()

    assert {r.error for r in report.sources} == {
        "EntraAuthError: credentials not configured: set TENANT_ID, CLIENT_SECRET"
    }


async def test_a_source_without_its_permission_fails_alone(harness: Harness) -> None:
    harness.fake.unpermitted_scopes.add(f"{harness.fake.management_api_base_url}/.default")

    report = await harness.make().run()

    runs = {r.source: r for r in report.sources}
    assert runs["directory"].count == 60 and runs["intune"].count == 30
    assert runs["unified"].status == "error"
    assert "AF10001" in (runs["unified"].error or "")
    assert "ActivityFeed.Read" in (runs["unified"].error or "")


async def test_the_management_api_seven_day_limit_clamps_the_window_with_a_warning(
    harness: Harness,
) -> None:
    report = await harness.make().run(forced_hours=720)

    runs = {r.source: r for r in report.sources}
    assert runs["unified"].count == 57
    assert any("keeps content for 7 days" in w for w in runs["unified"].warnings)
    assert runs["intune"].warnings == []
    starts = {r.query["startTime"] for r in harness.fake.hits("/subscriptions/content")}
    earliest = (harness.clock() - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S")
    assert min(starts) > earliest  # never a start the API would refuse


async def test_a_forced_window_refetches_pages_but_never_a_fetched_blob(harness: Harness) -> None:
    collector = harness.make()
    await collector.run()

    forced = await collector.run(forced_hours=168)

    assert {r.source: r.count for r in forced.sources}["unified"] == 0
    assert len(harness.fake.hits("/activity/feed/audit/")) == 8


async def test_two_runs_started_together_never_overlap(harness: Harness) -> None:
    collector = harness.make()

    first, second = await asyncio.gather(collector.run(), collector.run())

    assert first.total + second.total == sum(UNIQUE_RECORDS.values())
    assert {first.total, second.total} == {0, sum(UNIQUE_RECORDS.values())}


async def test_a_next_link_to_another_host_is_refused_and_gets_no_token(harness: Harness) -> None:
    harness.fake.graph_next_link_base = "https://evil.example/graph"

    report = await harness.make().run(["directory"])

    assert report.sources[0].status == "error"
    assert "refusing @odata.nextLink outside GRAPH_BASE_URL" in (report.sources[0].error or "")


async def test_the_schedule_runs_at_once_then_stops_when_asked(harness: Harness) -> None:
    collector = harness.make()
    stop = asyncio.Event()
    schedule = asyncio.create_task(collector.run_periodically(stop, interval_s=3600))

    async with asyncio.timeout(30):
        while (await read_source_health(harness.store))[2].status == "never_run":
            await asyncio.sleep(0.02)
        stop.set()
        await schedule

    assert [h.status for h in await read_source_health(harness.store)] == ["ok"] * len(
        UNIQUE_RECORDS
    )


async def test_the_service_collects_on_schedule_and_answers_on_its_control_endpoint(
    harness: Harness,
) -> None:
    port = free_port()
    settings = harness.settings(
        enable_periodic_fetch=True, fetch_interval_minutes=60, collector_control_port=port
    )
    collector = harness.make()
    stop = asyncio.Event()
    service = asyncio.create_task(serve_collector(collector, settings, stop))
    try:
        async with asyncio.timeout(30):
            while (await read_source_health(harness.store))[0].status == "never_run":
                await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as control:
            fetched = await control.post("/fetch", params={"hours": 1})
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await service

    assert fetched.status_code == 200
    assert fetched.json()["hours"] == 1


class RefusingLog(EmbeddedMessageLog):
    """A log that refuses to acknowledge publishes to one topic (a broker down mid-run)."""

    refused_topic = "aoc.raw.intune"

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        if topic == self.refused_topic:
            raise MessageLogError(f"no acknowledgement for {topic}: broker unavailable")
        await super().publish(topic, messages)


async def test_the_watermark_moves_only_after_the_log_acknowledged_the_records(
    fake_server: tuple[FakeMicrosoft, str, httpx.AsyncClient], engines: Engines, tmp_path: Path
) -> None:
    message_log = RefusingLog(tmp_path / "refusing-log.sqlite3")
    await message_log.start()
    store = engines.store
    try:
        harness = build_harness(fake_server, message_log, store)

        report = await harness.make().run()

        runs = {r.source: r for r in report.sources}
        assert runs["intune"].status == "error"
        assert "no acknowledgement for aoc.raw.intune" in (runs["intune"].error or "")
        assert await store.get_state(watermark_key("intune")) is None
        assert runs["directory"].status == "ok"
        assert (await store.get_state(watermark_key("directory")) or {})["watermark"]
    finally:
        await message_log.stop()


async def test_a_page_that_is_not_json_is_an_error_not_a_crash(harness: Harness) -> None:
    harness.fake.inject(Fault(match="deviceManagement/auditEvents", kind="garbage"))

    report = await harness.make().run(["intune"])

    assert report.sources[0].status == "error"
    assert "answered invalid JSON" in (report.sources[0].error or "")
    assert await harness.store.get_state(watermark_key("intune")) is None
