"""`aoc ingest` and `aoc replay --follow` as operators run them: real `aoc` processes against the
embedded engine (DATA_DIR) and a Kafka-protocol broker (KAFKA_BOOTSTRAP_SERVERS)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import orjson

from aoc_collector.replay import bundled_sample_dir
from aoc_common import topics
from aoc_common.engines import Engines
from aoc_common.message_log.base import Message, MessageLog
from tests.utils.expected import COLLECTED_RECORDS
from tests.utils.records import FETCHED_AT, directory_records

COLLECTED = sum(COLLECTED_RECORDS.values())


def aoc(
    *args: str, env: dict[str, str], timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aoc_cli.main", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


async def raw_counts(message_log: MessageLog) -> dict[str, int]:
    return {t: sum((await message_log.end_offsets(t)).values()) for t in topics.RAW_TOPICS}


async def test_ingest_publishes_the_samples_to_the_embedded_raw_topics_keyed_by_record_id(
    engines: Engines, tmp_path: Path
) -> None:
    done = aoc("ingest", str(bundled_sample_dir()), env={"DATA_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert f"published {COLLECTED:,} raw records" in done.stdout
    assert "ingest into embedded" in done.stderr  # the progress line's last word

    message_log = engines.message_log  # the embedded log in DATA_DIR, as the command left it
    counts = await raw_counts(message_log)
    assert counts == {topics.raw_topic(s): n for s, n in COLLECTED_RECORDS.items()}
    async with message_log.subscribe([topics.raw_topic("directory")], "check") as reader:
        record = (await reader.fetch(1, 1.0))[0]
    envelope = orjson.loads(record.value)
    assert record.key == envelope["payload"]["id"].encode()  # as the collector keys it


async def test_ingest_of_raw_envelopes_reports_a_line_that_is_not_one_and_publishes_the_rest(
    engines: Engines, tmp_path: Path, fixtures_dir: Path
) -> None:
    good = [
        {
            "source": "directory",
            "tenant_id": "contoso",
            "fetched_at": FETCHED_AT.isoformat(),
            "payload": record,
        }
        for record in directory_records(fixtures_dir)[:3]
    ]
    export = tmp_path / "export.jsonl"
    lines = (
        [orjson.dumps(e) for e in good[:2]] + [b'{"source": "nowhere"'] + [orjson.dumps(good[2])]
    )
    export.write_bytes(b"\n".join(lines) + b"\n")

    done = aoc("ingest", str(export), env={"DATA_DIR": str(tmp_path)})
    assert done.returncode == 1
    assert "published 3 raw records (aoc.raw.directory 3)" in done.stdout
    assert "export.jsonl:3: not a raw envelope" in done.stdout

    assert (await raw_counts(engines.message_log))[topics.raw_topic("directory")] == 3


def test_ingest_names_a_folder_without_anything_to_publish(tmp_path: Path) -> None:
    done = aoc("ingest", str(tmp_path), env={"DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 2
    assert "nothing to publish" in done.stderr


async def test_ingest_publishes_to_kafka_when_it_is_configured(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_ENABLE_IDEMPOTENCE": "false",
        "DATA_DIR": str(tmp_path),
    }
    done = await asyncio.to_thread(aoc, "ingest", str(bundled_sample_dir()), env=env)
    assert done.returncode == 0, done.stderr
    assert f"published {COLLECTED:,} raw records" in done.stdout
    assert "ingest into kafka" in done.stderr


async def test_replay_follow_shows_the_group_re_processing_until_it_has_caught_up(
    engines: Engines, tmp_path: Path
) -> None:
    topic, group = topics.raw_topic("intune"), "aoc-test-replayed"
    message_log = engines.message_log  # the embedded log in DATA_DIR, shared with the command
    await message_log.publish(topic, [Message(b"k%d" % n, b"{}") for n in range(40)])
    async with message_log.subscribe([topic], group) as reader:
        await reader.commit(await reader.fetch(100, 1.0))  # the group is done with them

    replay = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aoc_cli.main",
        "replay",
        "--group",
        group,
        "--topic",
        topic,
        "--offset",
        "0",
        "--follow",
        env={"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    # The group's service, started again after the reset: re-reads in small steps.
    assert replay.stdout is not None
    first_line = await asyncio.wait_for(replay.stdout.readline(), timeout=30)
    assert first_line.endswith(b"will resume at offset 0\n"), first_line
    async with message_log.subscribe([topic], group) as reader:
        read = 0
        while read < 40:
            records = await reader.fetch(10, 1.0)
            await reader.commit(records)
            read += len(records)
            await asyncio.sleep(0.3)
    out, err = await asyncio.wait_for(replay.communicate(), timeout=30)
    assert replay.returncode == 0, err.decode()
    assert b"40 messages to re-process" in out
    assert b"re-processing aoc.raw.intune: 40 messages in" in err
