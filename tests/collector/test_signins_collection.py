"""Entra sign-ins through the live collector and the local stand-in: Graph paging with `$filter` on
createdDateTime, throttling, and the beta sign-in types chosen by SIGNINS_EVENT_TYPES."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from aoc_collector.core import watermark_key
from aoc_collector.fake_microsoft import FakeMicrosoft, Fault
from aoc_collector.serving import serve_app
from aoc_common.engines import Engines
from aoc_common.settings import ConfigurationError
from aoc_common.sources import load_source_options
from aoc_common.sources.signins import SignInOptions
from tests.utils.collector import Harness, build_harness
from tests.utils.records import signin_records
from tests.utils.topic_io import raw_keys

SAMPLE_SIGNINS = 31


async def test_sign_ins_are_read_from_graph_v1_page_by_page_with_a_created_date_time_window(
    harness: Harness,
) -> None:
    harness.fake.graph_page_size = 10

    report = await harness.make().run(["signins"])

    assert [(r.source, r.status, r.count) for r in report.sources] == [
        ("signins", "ok", SAMPLE_SIGNINS)
    ]
    requests = harness.fake.hits("auditLogs/signIns")
    assert len(requests) == 4  # 10 + 10 + 10 + 1, following @odata.nextLink
    assert requests[0].path == "/graph/v1.0/auditLogs/signIns"
    assert requests[0].query["$filter"].startswith("createdDateTime ge ")
    assert " and createdDateTime le " in requests[0].query["$filter"]
    assert requests[0].query["$top"] == "999"
    assert all("$skiptoken" in r.query for r in requests[1:])
    keys = await raw_keys(harness.message_log, "signins", SAMPLE_SIGNINS)
    assert len(keys) == len(set(keys)) == SAMPLE_SIGNINS
    assert (await harness.store.get_state(watermark_key("signins")) or {})["watermark"]


async def test_a_throttled_sign_in_page_waits_for_retry_after_and_loses_nothing(
    harness: Harness,
) -> None:
    harness.fake.graph_page_size = 10
    harness.fake.inject(Fault(match="signIns?$skiptoken", status=429, retry_after=9, times=2))

    report = await harness.make().run(["signins"])

    assert report.sources[0].status == "ok" and report.sources[0].count == SAMPLE_SIGNINS
    assert harness.sleep.waits.count(9.0) == 2
    assert len(harness.fake.hits("auditLogs/signIns")) == 4 + 2
    assert len(await raw_keys(harness.message_log, "signins", SAMPLE_SIGNINS)) == SAMPLE_SIGNINS


def beta_records(fixtures_dir: Path) -> list[dict[str, Any]]:
    """One sign-in of each type, as Graph beta answers (with `signInEventTypes`)."""
    base = signin_records(fixtures_dir)[0]
    kinds = ["interactiveUser", "nonInteractiveUser", "servicePrincipal", "managedIdentity"]
    records = []
    for n, kind in enumerate(kinds):
        record = copy.deepcopy(base)
        record["id"] = f"beta-{kind}"
        record["signInEventTypes"] = [kind]
        record["isInteractive"] = kind == "interactiveUser"
        record["createdDateTime"] = f"2026-11-19T0{n}:00:00Z"
        records.append(record)
    return records


@pytest.fixture
async def beta_harness(
    tmp_path: Path, fixtures_dir: Path, engines: Engines
) -> AsyncIterator[Harness]:
    """The stand-in serving one sign-in of each type (and nothing else)."""
    samples = tmp_path / "samples"
    samples.mkdir()
    page = {"value": beta_records(fixtures_dir)}
    (samples / "graph_signins_page1.json").write_bytes(orjson.dumps(page))
    fake = FakeMicrosoft(samples)
    async with serve_app(fake.app, tls=True) as served:
        fake.base_url = served.url
        async with httpx.AsyncClient(verify=served.client_ssl or True) as http:
            yield build_harness((fake, served.url, http), engines.message_log, engines.store)


async def test_by_default_only_interactive_sign_ins_are_collected_from_v1(
    beta_harness: Harness,
) -> None:
    report = await beta_harness.make().run(["signins"])

    assert report.sources[0].count == 1
    assert await raw_keys(beta_harness.message_log, "signins", 1) == ["beta-interactiveUser"]
    assert beta_harness.fake.hits("auditLogs/signIns")[0].path.startswith("/graph/v1.0/")


async def test_other_sign_in_types_are_read_from_beta_with_a_sign_in_event_types_filter(
    beta_harness: Harness,
) -> None:
    options = SignInOptions(event_types=["nonInteractiveUser", "servicePrincipal"])

    report = await beta_harness.make(source_options={"signins": options}).run(["signins"])

    assert report.sources[0].count == 2
    keys = sorted(await raw_keys(beta_harness.message_log, "signins", 2))
    assert keys == ["beta-nonInteractiveUser", "beta-servicePrincipal"]
    request = beta_harness.fake.hits("auditLogs/signIns")[0]
    assert request.path == "/graph/beta/auditLogs/signIns"
    assert request.query["$filter"].endswith(
        " and signInEventTypes/any(t: t eq 'nonInteractiveUser' or t eq 'servicePrincipal')"
    )


def test_signins_event_types_comes_from_the_environment_and_a_bad_value_stops_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIGNINS_EVENT_TYPES", "interactiveUser, managedIdentity")
    options = load_source_options()["signins"]
    assert isinstance(options, SignInOptions)
    assert options.event_types == ["interactiveUser", "managedIdentity"]

    monkeypatch.setenv("SIGNINS_EVENT_TYPES", "everyone")
    with pytest.raises(ConfigurationError) as stopped:
        load_source_options()
    assert str(stopped.value.code).startswith("SIGNINS_EVENT_TYPES: Input should be ")
