"""At-least-once across a real crash: the forwarder process is killed (SIGKILL) after the SIEM received a
batch and before the offset was committed; a new process sends that batch again and loses nothing.

The restarted process batches differently (smaller batches here; on Kafka its fetches are whatever the
broker hands it), so the test waits until it has committed every record on the topic, not merely until
every event was seen once: the held batch's events were all seen before the restart.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aoc_common import topics
from aoc_common.events import CanonicalEvent
from aoc_common.message_log.base import Message
from aoc_common.settings import Settings
from tests.engines.kafka_server import kafka_test_options
from tests.utils.siem import Engine, caught_up, ours, record_ends
from tests.utils.siem_receivers import HttpSiem, serving
from tests.utils.topic_io import publish_events
from tests.utils.waiting import wait_for

SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}


def forwarder_environment(
    engine: Engine, tmp_path: Path, url: str, bootstrap: str | None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS_VARIABLES}
    env |= {
        "SIEM_ENABLED": "true",
        "SIEM_FORMAT": "json",
        "SIEM_WEBHOOK_URL": url,
        "SIEM_BATCH_LINGER_MS": "50",
        "LOG_LEVEL": "WARNING",
    }
    if engine.name == "embedded":
        env |= {"LOG_ENGINE": "embedded", "DATA_DIR": str(tmp_path)}
    else:
        assert bootstrap is not None
        options = kafka_test_options()
        env |= {
            "LOG_ENGINE": "kafka",
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_ENABLE_IDEMPOTENCE": "false",
            "KAFKA_SESSION_TIMEOUT_MS": str(options["session_timeout_ms"]),
            "KAFKA_HEARTBEAT_INTERVAL_MS": str(options["heartbeat_interval_ms"]),
        }
    return env


@pytest.mark.every_engine_kind
async def test_a_batch_sent_but_not_committed_before_a_crash_is_sent_again_and_nothing_is_lost(
    engine: Engine,
    events: list[CanonicalEvent],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    bootstrap = None
    if engine.name == "kafka":
        bootstrap = request.getfixturevalue("kafka_bootstrap")
    # `python -m aoc_siem_forwarder` is the real service: it uses the real consumer group.
    service = Engine(engine.name, engine.message_log, topics.SIEM_FORWARDER_GROUP)
    if engine.name == "kafka":
        await engine.message_log.reset_group(
            service.group, topics.EVENTS, to_timestamp=datetime.now(UTC)
        )
    siem = HttpSiem(hold_next=True)
    async with serving(siem) as url:
        env = forwarder_environment(engine, tmp_path, url, bootstrap)
        logs = tmp_path / "forwarder.log"

        async def start(batch_max_events: int) -> asyncio.subprocess.Process:
            with logs.open("ab") as sink:
                return await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "aoc_siem_forwarder",
                    env=env | {"SIEM_BATCH_MAX_EVENTS": str(batch_max_events)},
                    cwd=tmp_path,
                    stdout=sink,
                    stderr=sink,
                )

        await publish_events(engine.message_log, events)
        crashed = await start(batch_max_events=50)
        await asyncio.wait_for(siem.holding.wait(), 60)  # the SIEM has the first batch, unanswered
        crashed.kill()
        assert await crashed.wait() == -signal.SIGKILL
        held = ours(siem.accepted, events)
        siem.release.set()

        # The held batch of 50 comes back in batches of 10: all of it, however it is batched.
        restarted = await start(batch_max_events=10)
        try:
            everything = {e.id for e in events}
            await wait_for(
                lambda: set(ours(siem.accepted, events)), lambda seen: seen >= everything
            )
            # Every record committed by the restarted process, not only every event seen once.
            assert await caught_up(service) == 0
        finally:
            restarted.send_signal(signal.SIGTERM)
            exit_code = await asyncio.wait_for(restarted.wait(), 30)

    assert exit_code == 0, logs.read_text(errors="replace")[-3000:]
    received = Counter(ours(siem.accepted, events))
    assert set(received) == everything  # nothing missing
    assert held  # the crash really came between sending and committing…
    twice = {event_id for event_id, count in received.items() if count > 1}
    # …and exactly that batch was sent again: all of it, and nothing the restarted process committed.
    assert twice == set(held), (
        f"{len(held)} held, {len(twice & set(held))} of them sent again, "
        f"{len(twice - set(held))} others sent twice"
    )


@pytest.mark.every_engine_kind
async def test_waiting_for_the_forwarder_counts_every_record_of_a_batch(engine: Engine) -> None:
    """What `caught_up` waits for: the offset after the last record. Tansu reports a partition's end
    as its last batch's base offset + 1, so the restarted forwarder above, with one record of each
    partition committed, used to look done while the held batch was still to be sent again."""
    topic = f"test-ends-{uuid.uuid4().hex[:8]}"
    await engine.message_log.ensure_topics([topic], partitions=1)
    await engine.message_log.publish(topic, [Message(None, b"m%d" % n) for n in range(3)])

    assert await record_ends(engine.message_log, topic) == {0: 3}
