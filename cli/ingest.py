"""`aoc ingest DIR`: publish saved API answers to the raw topics of whatever engine is configured.

The first ingest on the production engines (Kafka, or the embedded log of a single-machine `aoc run`):
the bundled samples, Microsoft's answers an operator saved (Graph pages, Management Activity content —
the same files `aoc demo --samples` reads), or raw envelopes as JSON Lines (`*.jsonl`: one
`{"source", "tenant_id", "fetched_at", "payload"}` per line, what `bench/generate.py --out` writes and
what a raw topic holds). Records are keyed and enveloped as the collector publishes them, so the
normalizer cannot tell them from collected ones; a record too large for the log is dead-lettered with
the reason (as the collector does), and a line that is not an envelope is reported by its number.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from pydantic import ValidationError

from aoc_cli.progress import Progress
from aoc_collector.service import ReplaySet, load_replay_set, publish_envelopes
from aoc_common import topics
from aoc_common.events import RawEnvelope, utc_now
from aoc_common.message_log import open_message_log
from aoc_common.settings import Settings

CHUNK = 500
SHOWN_PROBLEMS = 5


@dataclass
class IngestReport:
    read: Counter[str] = field(default_factory=Counter)  # records per raw topic
    dead_lettered: int = 0  # too large for the log: on aoc.dlq with the reason
    problems: list[str] = field(default_factory=list)

    @property
    def published(self) -> int:
        return sum(self.read.values()) - self.dead_lettered


def jsonl_files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(path.glob("*.jsonl"))


def read_jsonl(path: Path, report: IngestReport) -> Iterator[RawEnvelope]:
    """Envelopes from one JSON Lines file; a line that is not one is reported, never published."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield RawEnvelope.model_validate(orjson.loads(line))
            except (orjson.JSONDecodeError, ValidationError) as error:
                reason = str(error).splitlines()[0][:200]
                report.problems.append(f"{path.name}:{number}: not a raw envelope ({reason})")


def count_lines(files: list[Path]) -> int:
    total = 0
    for path in files:
        with path.open("rb") as lines:
            total += sum(1 for line in lines if line.strip())
    return total


def chunks(items: Iterator[RawEnvelope], size: int = CHUNK) -> Iterator[list[RawEnvelope]]:
    chunk: list[RawEnvelope] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def ingest(settings: Settings, path: Path, *, include_malformed: bool = False) -> int:
    """Publish everything under `path`; prints a progress line, then what went where. Exit code."""
    planned = await asyncio.to_thread(plan, settings, path, include_malformed)
    if isinstance(planned, int):
        return planned
    files, saved, total = planned
    return await _publish(settings, files, saved, total)


def plan(
    settings: Settings, path: Path, include_malformed: bool
) -> int | tuple[list[Path], ReplaySet | None, int]:
    """What there is to publish (files read off the event loop), or an exit code when nothing."""
    if not path.exists():
        print(f"aoc ingest: {path} does not exist", file=sys.stderr)
        return 2
    files = jsonl_files(path)
    saved = (
        load_replay_set(
            path,
            tenant_id=settings.tenant_id,
            fetched_at=utc_now(),
            include_malformed=include_malformed,
        )
        if path.is_dir()
        else None
    )
    total = count_lines(files) + (
        len(saved.envelopes) + len(saved.raw_messages) if saved is not None else 0
    )
    if total == 0:
        print(
            f"aoc ingest: nothing to publish in {path}: expected saved API answers (the files "
            "`aoc demo --samples` reads) or raw envelopes as *.jsonl",
            file=sys.stderr,
        )
        return 2
    return files, saved, total


async def _publish(
    settings: Settings, files: list[Path], saved: ReplaySet | None, total: int
) -> int:
    report = IngestReport()
    message_log = open_message_log(settings, client_id="aoc-ingest")
    await message_log.start()
    try:
        await message_log.ensure_topics([*topics.RAW_TOPICS, topics.DLQ])
        progress = Progress(f"ingest into {message_log.engine}", total)
        sources: list[Iterator[RawEnvelope]] = [read_jsonl(f, report) for f in files]
        if saved is not None:
            sources.insert(0, iter(saved.envelopes))
        for source in sources:
            for chunk in chunks(source):
                published = await publish_envelopes(
                    message_log, chunk, max_record_bytes=settings.max_record_bytes
                )
                report.dead_lettered += len(chunk) - published
                report.read.update(topics.raw_topic(e.source) for e in chunk)
                progress.advance(len(chunk))
        for topic, message in saved.raw_messages if saved is not None else []:
            await message_log.publish(topic, [message])
            report.read[topic] += 1
            progress.advance(1)
        progress.set(progress.done + len(report.problems))
        progress.finish()
    finally:
        await message_log.stop()
    per_topic = ", ".join(f"{topic} {count:,}" for topic, count in sorted(report.read.items()))
    print(f"published {report.published:,} raw records ({per_topic or 'none'})")
    if report.dead_lettered:
        print(
            f"{report.dead_lettered} records exceed MAX_RECORD_BYTES={settings.max_record_bytes}: "
            f"dead-lettered on {topics.DLQ} with the reason"
        )
    if report.problems:
        print(f"{len(report.problems)} lines were not raw envelopes and were skipped:")
        for problem in report.problems[:SHOWN_PROBLEMS]:
            print(f"  - {problem}")
        if len(report.problems) > SHOWN_PROBLEMS:
            print(f"  - … and {len(report.problems) - SHOWN_PROBLEMS} more")
        return 1
    return 0
