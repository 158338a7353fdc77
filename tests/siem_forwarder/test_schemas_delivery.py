"""SIEM_SCHEMA through the running forwarder (ECS on the webhook, OCSF on Splunk HEC), and the
optional topic aoc.events.ocsf: what arrives is valid ECS / OCSF, every event once."""

from __future__ import annotations

import uuid

import orjson
import pytest

from aoc_common import topics
from aoc_common.circuit_breaker import CircuitBreaker
from aoc_common.engines import Engines
from aoc_common.events import CanonicalEvent
from aoc_common.http_retry import RetryPolicy
from aoc_siem_forwarder.ocsf_topic import OcsfPublisher
from aoc_siem_forwarder.runtime import SiemForwarder
from aoc_siem_forwarder.transports import HttpTransport
from tests.utils.consumers import running
from tests.utils.siem import Engine, ours
from tests.utils.siem_receivers import HttpSiem, serving
from tests.utils.siem_schemas import ecs_problems, ocsf_problems
from tests.utils.topic_io import publish_events, read_topic
from tests.utils.waiting import wait_for

HEC_TOKEN = "11111111-2222-3333-4444-555555555555"


@pytest.mark.parametrize(("siem_format", "schema"), [("json", "ecs"), ("splunk_hec", "ocsf")])
async def test_the_siem_receives_every_event_in_the_schema_siem_schema_names(
    engine: Engine, events: list[CanonicalEvent], siem_format: str, schema: str
) -> None:
    token = HEC_TOKEN if siem_format == "splunk_hec" else None
    siem = HttpSiem(siem_format=siem_format, hec_token=token)  # type: ignore[arg-type]
    async with serving(siem) as url:
        await publish_events(engine.message_log, events)
        transport = HttpTransport(siem_format, f"{url}/ingest", timeout_s=5, hec_token=token)  # type: ignore[arg-type]
        forwarder = SiemForwarder(
            engine.message_log,
            transport,
            breaker=CircuitBreaker(5, 30),
            policy=RetryPolicy(max_attempts=3, base_delay_s=0.02, max_delay_s=0.1),
            linger_s=0.05,
            group=engine.group,
            schema=schema,  # type: ignore[arg-type]
        )
        async with running(forwarder):
            await wait_for(lambda: len(ours(siem.accepted, events)), lambda n: n >= len(events))

    assert sorted(ours(siem.accepted, events)) == sorted(e.id for e in events)
    judge = ecs_problems if schema == "ecs" else ocsf_problems
    assert [p for sent in siem.accepted_events for p in judge(sent)] == []


@pytest.mark.every_engine_kind
async def test_aoc_events_ocsf_carries_every_event_as_ocsf_under_its_key(
    engines: Engines, events: list[CanonicalEvent]
) -> None:
    events_topic, ocsf_topic, group = topics.EVENTS, topics.EVENTS_OCSF, topics.OCSF_PUBLISHER_GROUP
    if engines.message_log.engine != "embedded":
        # The session's broker is shared: this test reads and writes topics of its own.
        suffix = uuid.uuid4().hex[:12]
        events_topic, ocsf_topic = f"{events_topic}.test-{suffix}", f"{ocsf_topic}.test-{suffix}"
        group = f"test-ocsf-{suffix}"
        await engines.message_log.ensure_topics([events_topic, ocsf_topic])
    await publish_events(engines.message_log, events, events_topic)
    publisher = OcsfPublisher(
        engines.message_log, group=group, events_topic=events_topic, ocsf_topic=ocsf_topic
    )
    async with running(publisher):
        records = await read_topic(engines.message_log, ocsf_topic, len(events))

    assert sorted(r.key for r in records if r.key) == sorted(e.dedupe_key.encode() for e in events)
    documents = [orjson.loads(r.value) for r in records]
    assert [p for d in documents for p in ocsf_problems(d)] == []
    assert {d["metadata"]["uid"] for d in documents} == {e.id for e in events}


def test_a_json_schema_over_cef_syslog_is_a_configuration_error(tmp_path):  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from aoc_common.settings import Settings

    with pytest.raises(ValidationError, match="SIEM_SCHEMA=ocsf is a JSON schema"):
        Settings(
            data_dir=tmp_path,
            siem_enabled=True,
            siem_format="syslog",
            syslog_host="siem.example",
            siem_schema="ocsf",
        )
    assert (
        Settings(
            data_dir=tmp_path,
            siem_enabled=True,
            siem_format="syslog",
            syslog_host="siem.example",
            syslog_payload="json",
            siem_schema="ocsf",
        ).siem_schema
        == "ocsf"
    )
