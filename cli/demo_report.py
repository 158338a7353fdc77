"""What `aoc demo` tells its user: what was published, what became of every record (stored, merged as a
duplicate, or dead-lettered with its reason), what reached the SIEM, which alerts were raised, and
where to look.

Two kinds of function: readers that wait for or read the pipeline's state (the consumer groups' lag,
the dead-letter topic, the store), and writers that turn facts into the lines printed. All the wording
is here, in the `*_lines`/`*_line` functions, so that changing what the demo says never touches how it
runs.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from aoc_common import topics
from aoc_common.codec import decode
from aoc_common.event_store.base import AlertStore, EventReader
from aoc_common.message_log.base import MessageLog
from aoc_common.message_log.consumer import record_lag
from aoc_common.operator_errors import one_line
from aoc_common.query import MAX_PAGE_SIZE, EventQuery
from aoc_common.rules import Alert, AlertQuery
from aoc_common.settings import Settings

INGEST_TIMEOUT_S = 120.0
SIEM_CATCH_UP_S = 30.0
PREFIX = "AOC demo: "
REASON_WIDTH = 160


# --- reading the pipeline's state ---------------------------------------------------------------


async def wait_until_ingested(message_log: MessageLog, *, alerts_enabled: bool) -> None:
    """Until the normalizer, the store and (when it runs) the alerter have committed everything."""
    deadline = time.monotonic() + INGEST_TIMEOUT_S
    while time.monotonic() < deadline:
        raw_lag = await record_lag(message_log, topics.NORMALIZER_GROUP, topics.RAW_TOPICS)
        store_lag = await record_lag(message_log, topics.STORE_GROUP, [topics.EVENTS])
        alerter_lag = (
            await record_lag(message_log, topics.ALERTER_GROUP, [topics.EVENTS])
            if alerts_enabled
            else 0
        )
        if raw_lag == 0 and store_lag == 0 and alerter_lag == 0:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the pipeline did not catch up within {INGEST_TIMEOUT_S:.0f} s")


async def dead_letter_reasons(message_log: MessageLog, start: Mapping[int, int]) -> list[str]:
    """Reasons of the dead letters this run produced (read back from the DLQ topic itself)."""
    reasons: list[str] = []
    group = f"aoc-demo-report-{time.time_ns()}"
    await message_log.reset_group(group, topics.DLQ, to_offset=min(start.values(), default=0))
    ends = await message_log.end_offsets(topics.DLQ)
    wanted = sum(ends.values()) - sum(start.values())
    async with message_log.subscribe([topics.DLQ], group) as subscription:
        while len(reasons) < wanted:
            records = await subscription.fetch(500, 1.0)
            if not records:
                break
            reasons += [decode(r.value)["reason"] for r in records]
    return reasons


async def siem_lag_after_catch_up(message_log: MessageLog) -> int:
    """Events the SIEM has not acknowledged yet, after giving it SIEM_CATCH_UP_S to catch up: a SIEM
    that is down must not hold the demo hostage."""
    deadline = time.monotonic() + SIEM_CATCH_UP_S
    lag = await record_lag(message_log, topics.SIEM_FORWARDER_GROUP, [topics.EVENTS])
    while lag > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        lag = await record_lag(message_log, topics.SIEM_FORWARDER_GROUP, [topics.EVENTS])
    return lag


async def stored_alerts(store: AlertStore) -> tuple[list[Alert], bool]:
    """The alerts in the store (alerts persist across demo runs; ids keep them unique), and whether
    there are more than one page of them."""
    page = await store.query_alerts(AlertQuery(page_size=MAX_PAGE_SIZE))
    return page.items, page.next_cursor is not None


async def stored_time_range(store: EventReader) -> tuple[datetime, datetime] | None:
    """When the oldest and the newest stored event happened; None when the store is empty."""
    newest = await store.query_events(EventQuery(page_size=1))
    oldest = await store.query_events(EventQuery(page_size=1, order="oldest"))
    if not newest.items or not oldest.items:
        return None
    return oldest.items[0].timestamp, newest.items[0].timestamp


# --- what is printed ---------------------------------------------------------------------------


def stand_in_line(url: str, recorded_at: datetime) -> str:
    return f"{PREFIX}local Microsoft stand-in at {url}, clock at {recorded_at:%Y-%m-%d %H:%M} UTC"


def collection_problem_lines(problems: Sequence[tuple[str, str]]) -> list[str]:
    """One line per (source, warning or error) of the live collection."""
    return [f"{PREFIX}{source}: {problem}" for source, problem in problems]


def ingest_lines(published: int, origin: str, stored: int, reasons: Sequence[str]) -> list[str]:
    """What was published and stored; each dead letter's reason on one line, shortened at a word."""
    plural = "" if len(reasons) == 1 else "s"
    dead = (
        f"{len(reasons)} dead letter{plural} this run:" if reasons else "no dead letters this run"
    )
    return [
        f"{PREFIX}published {published} raw records from {origin}",
        f"{PREFIX}{stored} events in the store; {dead}",
        *(f"  - {one_line(reason, REASON_WIDTH)}" for reason in reasons),
    ]


def siem_line(lag: int, settings: Settings) -> str:
    if lag <= 0:
        return f"{PREFIX}every event forwarded to the SIEM (SIEM_FORMAT={settings.siem_format})"
    return (
        f"{PREFIX}{lag} events not yet acknowledged by the SIEM "
        f"(SIEM_FORMAT={settings.siem_format}); the forwarder keeps trying, see its log"
    )


def alert_lines(alerts: Sequence[Alert], more: bool) -> list[str]:
    """How many alerts each rule raised; a Sigma rule's alerts say so (its twin may share the
    native rule's name)."""
    by_rule = Counter(
        (alert.severity, alert.rule_name, alert.sigma_id is not None) for alert in alerts
    )
    lines = [f"{PREFIX}{len(alerts)}{'+' if more else ''} alerts in the store (…/api/alerts):"]
    for (severity, name, sigma), count in sorted(by_rule.items(), key=lambda i: i[0][1:]):
        lines.append(f"  - {count} × [{severity}] {'Sigma: ' if sigma else ''}{name}")
    return lines


def serving_line(settings: Settings) -> str:
    url = f"http://{settings.api_host}:{settings.api_port}"
    return f"{PREFIX}serving {url}  (UI: {url}/ · API: {url}/api/events · Ctrl-C to stop)"


def time_range_line(settings: Settings, time_range: tuple[datetime, datetime] | None) -> str | None:
    """A UI link opened on the days the stored events happened.

    The samples keep the times Microsoft recorded (they are audit records: the demo does not move
    them), so a "last 24 hours" view of them would be empty a few days later; this link is not.
    """
    if time_range is None:
        return None
    first = time_range[0].astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    last = time_range[1].astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = last + timedelta(days=1)
    query = urlencode(
        {
            "view": "events",
            "start": f"{first:%Y-%m-%dT%H:%M:%SZ}",
            "end": f"{end:%Y-%m-%dT%H:%M:%SZ}",
        },
        safe=":",
    )
    url = f"http://{settings.api_host}:{settings.api_port}/?{query}"
    days = f"{first:%Y-%m-%d}" if first == last else f"{first:%Y-%m-%d} to {last:%Y-%m-%d}"
    return f"{PREFIX}the events happened {days} (times as recorded); the UI on those days: {url}"
