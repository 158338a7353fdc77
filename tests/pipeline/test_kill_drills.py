"""kill -9 drills on the embedded engines: a consumer killed mid-stream loses nothing and doubles nothing.

The normalizer, the store sink and the alerter run as real processes (`aoc run <service>`) sharing one
DATA_DIR, fed with the bundled samples copied under new record ids (so that the stream is long enough
to be killed in the middle of it, duplicates and all). In each drill one of them is killed with SIGKILL
several times while it works — after it committed some batches and before it committed the rest — and
started again; the others keep running. When every group has caught up, the store must hold every
distinct record exactly once, and the alerts must be exactly those of an undisturbed run: none lost,
none doubled. The store sink and the alerter are drilled on a complete `aoc.events` (the normalizer
runs first), so that they have a stream to be killed in the middle of. (The SIEM forwarder's drill
is tests/siem_forwarder/test_crash_recovery.py.)
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aoc_collector.core import envelopes, to_messages
from aoc_collector.replay import bundled_sample_dir
from aoc_common import topics
from aoc_common.event_store.sqlite import SqliteEventStore
from aoc_common.message_log.base import Message
from aoc_common.message_log.embedded import EmbeddedMessageLog
from aoc_common.query import MAX_PAGE_SIZE, EventQuery
from aoc_common.rules import AlertQuery
from aoc_common.settings import Settings
from aoc_common.sources import all_sources
from aoc_common.sources.samples import sample_records

pytestmark = pytest.mark.timeout(600)

AOC = Path(sys.executable).with_name("aoc")
SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}
COPIES = 12  # ≈ 1,800 raw records: several batches for each consumer
CONSUMERS = {
    "normalizer": (topics.NORMALIZER_GROUP, tuple(topics.RAW_TOPICS)),
    "store": (topics.STORE_GROUP, (topics.EVENTS,)),
    "alerter": (topics.ALERTER_GROUP, (topics.EVENTS,)),
}
KILL_AT = (0.15, 0.45, 0.75)  # of the stream committed by the drilled consumer
CATCH_UP_S = 240.0


@dataclass(frozen=True)
class Outcome:
    stored: Counter[str]  # dedupe_key → how many stored events carry it
    alerts: frozenset[str]  # alert ids
    alert_triggers: Counter[tuple[str, tuple[str, ...]]]  # (rule, events) → how many alerts
    kills: int


def drill_messages() -> list[tuple[str, list[Message]]]:
    """The bundled samples COPIES times, each copy under record ids of its own."""
    fetched_at = datetime(2026, 11, 20, tzinfo=UTC)
    items = []
    for copy in range(COPIES):
        for spec in all_sources():
            records = []
            for record in sample_records(spec, bundled_sample_dir()):
                renamed = dict(record)
                renamed[spec.record_id_field] = f"{record[spec.record_id_field]}-drill{copy}"
                records.append(renamed)
            items += envelopes(spec.id, records, tenant_id="contoso", fetched_at=fetched_at)
    return list(to_messages(items, max_record_bytes=1_000_000).messages.items())


def environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS_VARIABLES}
    return env | {
        "DATA_DIR": str(data_dir),
        "LOG_ENGINE": "embedded",
        "STORE_ENGINE": "embedded",
        "LOG_LEVEL": "WARNING",
        # The sink's batches are smaller than its default, so that the stream is several of them.
        "STORE_BATCH_MAX_EVENTS": "400",
    }


def start(service: str, data_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(AOC), "run", service],
        env=environment(data_dir),
        cwd=data_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def committed_share(log: EmbeddedMessageLog, service: str) -> float:
    """How much of its input the service's group has committed (0…1)."""
    group, inputs = CONSUMERS[service]
    done = total = 0
    for topic in inputs:
        ends = await log.end_offsets(topic)
        committed = await log.committed(group, topic)
        total += sum(ends.values())
        done += sum(min(committed.get(p) or 0, end) for p, end in ends.items())
    return done / total if total else 0.0


async def wait_for_group(
    log: EmbeddedMessageLog, service: str, processes: dict[str, subprocess.Popen[bytes]]
) -> None:
    deadline = time.monotonic() + CATCH_UP_S
    while await committed_share(log, service) < 1.0:
        assert processes[service].poll() is None, f"{service} stopped"
        assert time.monotonic() < deadline, f"{service} did not catch up"
        await asyncio.sleep(0.05)


async def caught_up(log: EmbeddedMessageLog) -> bool:
    for group, inputs in CONSUMERS.values():
        for topic in inputs:
            if await log.lag(group, topic) > 0:
                return False
    return True


async def run_pipeline(data_dir: Path, drilled: str | None) -> Outcome:
    """Feed the pipeline, kill `drilled` at each KILL_AT share (restarting it), wait, and look."""
    data_dir.mkdir(parents=True)
    log = EmbeddedMessageLog(data_dir / "log.sqlite3")
    await log.start()
    processes: dict[str, subprocess.Popen[bytes]] = {}
    kills = 0
    jitter = random.Random(len(KILL_AT))
    try:
        await log.ensure_topics(topics.ALL_TOPICS)
        for topic, messages in drill_messages():
            await log.publish(topic, messages)
        if drilled in ("store", "alerter"):
            # Their whole input first, so that there is a stream to kill them in the middle of.
            processes["normalizer"] = start("normalizer", data_dir)
            await wait_for_group(log, "normalizer", processes)
        for service in CONSUMERS:
            if service not in processes:  # not setdefault: it would start a second, untracked one
                processes[service] = start(service, data_dir)
        pending_kills = list(KILL_AT) if drilled else []
        deadline = time.monotonic() + CATCH_UP_S
        while time.monotonic() < deadline:
            for service, process in processes.items():
                assert process.poll() is None, f"{service} stopped: {process.stderr}"
            if pending_kills and drilled is not None:
                share = await committed_share(log, drilled)
                if share >= pending_kills[0]:
                    pending_kills.pop(0)
                    # Somewhere in the batch after the commit just seen, not right at the commit.
                    await asyncio.sleep(jitter.uniform(0, 0.15))
                    if share < 1.0:  # still working: kill it in the middle of the stream
                        processes[drilled].send_signal(signal.SIGKILL)
                        processes[drilled].wait(timeout=30)
                        kills += 1
                        processes[drilled] = start(drilled, data_dir)
            elif await caught_up(log):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the pipeline did not catch up")
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for service, process in processes.items():
            _out, err = process.communicate(timeout=60)
            assert b"Traceback" not in err, f"{service}: {err.decode()[-2000:]}"
        await log.stop()
    return await read_outcome(data_dir, kills)


async def read_outcome(data_dir: Path, kills: int) -> Outcome:
    store = SqliteEventStore(data_dir / "events.sqlite3", retention_days=3650)
    await store.start()
    try:
        stored: Counter[str] = Counter()
        cursor = None
        while True:
            page = await store.query_events(EventQuery(page_size=MAX_PAGE_SIZE, cursor=cursor))
            stored.update(event.dedupe_key for event in page.items)
            if not (cursor := page.next_cursor):
                break
        alerts = []
        alert_cursor = None
        while True:
            alert_page = await store.query_alerts(
                AlertQuery(page_size=MAX_PAGE_SIZE, cursor=alert_cursor)
            )
            alerts += alert_page.items
            if not (alert_cursor := alert_page.next_cursor):
                break
    finally:
        await store.stop()
    triggers = Counter((a.rule_id, tuple(sorted(a.event_ids))) for a in alerts)
    return Outcome(stored, frozenset(a.id for a in alerts), triggers, kills)


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return asyncio.run(run_pipeline(tmp_path_factory.mktemp("drill") / "undisturbed", None))


@pytest.mark.parametrize("drilled", list(CONSUMERS))
def test_a_consumer_killed_mid_stream_stores_every_record_once_and_doubles_no_alert(
    drilled: str, undisturbed: Outcome, tmp_path: Path
) -> None:
    outcome = asyncio.run(run_pipeline(tmp_path / drilled, drilled))

    assert outcome.kills >= 2, "the drill never caught the consumer mid-stream"
    assert undisturbed.stored and undisturbed.alerts
    # Every distinct record stored, and exactly once.
    assert set(outcome.stored) == set(undisturbed.stored)
    assert max(outcome.stored.values()) == 1
    # The same alerts as without the kills: none lost, none doubled.
    assert outcome.alerts == undisturbed.alerts
    assert max(outcome.alert_triggers.values()) == 1
