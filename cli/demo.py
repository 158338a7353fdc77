"""`aoc demo`: collector (replay), normalizer, store sink, alerter and API in one process, no servers.

With `--source fake` the collector is the live one, collecting over HTTPS from the local stand-in of
Entra ID, Graph and the Management Activity API (aoc_collector.fake_microsoft) that serves the same
samples; its control endpoint is served on a free loopback port and wired to the API (COLLECTOR_URL),
so `/api/fetch-audit-logs` and `/api/source-health` work as they do in production.

It uses the embedded engines whatever the environment says (the demo must never write into a production
Kafka or MongoDB), reports what happened to every record — stored, merged as a duplicate, or dead-lettered
with its reason — and then serves the UI until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydantic import SecretStr

from aoc_alerter.runtime import Alerter
from aoc_api.app import create_app
from aoc_api.server import serve
from aoc_collector.__main__ import publish_replay
from aoc_collector.control import create_control_app
from aoc_collector.fake_microsoft import FakeMicrosoft
from aoc_collector.live import MICROSOFT_TIMEOUT, Collector
from aoc_collector.replay import bundled_sample_dir
from aoc_collector.serving import serve_app
from aoc_common import topics
from aoc_common.codec import decode
from aoc_common.entra_auth import EntraTokenProvider
from aoc_common.event_store.sqlite import SqliteEventStore
from aoc_common.logging import configure_logging
from aoc_common.message_log.base import MessageLog
from aoc_common.message_log.consumer import record_lag
from aoc_common.message_log.embedded import EmbeddedMessageLog
from aoc_common.operator_errors import describe_failure, tracebacks_shown
from aoc_common.query import MAX_PAGE_SIZE
from aoc_common.rules import AlertQuery
from aoc_common.settings import ConfigurationError, Settings, load_settings
from aoc_normalizer.runtime import Normalizer
from aoc_siem_forwarder.runtime import SiemForwarder
from aoc_store.runtime import StoreSink

INGEST_TIMEOUT_S = 120.0
SIEM_CATCH_UP_S = 30.0


@dataclass(frozen=True)
class DemoOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".aoc-data/demo")
    samples: Path | None = None
    include_malformed: bool = True
    exit_when_ingested: bool = False
    source: str = "samples"  # or "fake": the live collector against the local Microsoft stand-in


def run_demo(options: DemoOptions) -> int:
    try:
        settings = load_settings(
            log_engine="embedded",
            store_engine="embedded",
            data_dir=options.data_dir,
            api_host=options.host,
            api_port=options.port,
        )
    except ConfigurationError as error:
        print(error.code, file=sys.stderr)
        return 2
    configure_logging("demo", "WARNING" if settings.log_level == "INFO" else settings.log_level)
    try:
        return asyncio.run(_demo(settings, options))
    except Exception as error:
        if tracebacks_shown(settings):
            raise
        paths = {"--data-dir": options.data_dir}
        if options.samples is not None:
            paths["--samples"] = options.samples
        print(f"aoc demo: {describe_failure(error, settings, paths=paths)}", file=sys.stderr)
        return 1


async def _wait_until_ingested(message_log: MessageLog, *, alerts_enabled: bool) -> None:
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


async def _siem_report(message_log: MessageLog, settings: Settings) -> str:
    """Whether the SIEM forwarder caught up; a SIEM that is down must not hold the demo hostage."""
    deadline = time.monotonic() + SIEM_CATCH_UP_S
    lag = await record_lag(message_log, topics.SIEM_FORWARDER_GROUP, [topics.EVENTS])
    while lag > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        lag = await record_lag(message_log, topics.SIEM_FORWARDER_GROUP, [topics.EVENTS])
    if lag <= 0:
        return f"AOC demo: every event forwarded to the SIEM (SIEM_FORMAT={settings.siem_format})"
    return (
        f"AOC demo: {lag} events not yet acknowledged by the SIEM "
        f"(SIEM_FORMAT={settings.siem_format}); the forwarder keeps trying, see its log"
    )


async def _dead_letter_reasons(message_log: MessageLog, start: dict[int, int]) -> list[str]:
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


async def _print_alerts(store: SqliteEventStore) -> None:
    """How many alerts each rule raised (alerts persist across demo runs; ids keep them unique)."""
    page = await store.query_alerts(AlertQuery(page_size=MAX_PAGE_SIZE))
    by_rule = Counter((alert.severity, alert.rule_name) for alert in page.items)
    more = "+" if page.next_cursor else ""
    print(f"AOC demo: {len(page.items)}{more} alerts in the store (…/api/alerts):")
    for (severity, name), count in sorted(by_rule.items(), key=lambda item: item[0][1]):
        print(f"  - {count} × [{severity}] {name}")


async def _demo(settings: Settings, options: DemoOptions) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    message_log = EmbeddedMessageLog(settings.data_dir / "log.sqlite3")
    store = SqliteEventStore(
        settings.data_dir / "events.sqlite3", retention_days=settings.retention_days
    )
    await message_log.start()
    await store.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stack = contextlib.AsyncExitStack()
    try:
        await message_log.ensure_topics(topics.ALL_TOPICS)
        dlq_start = await message_log.end_offsets(topics.DLQ)
        samples = options.samples or bundled_sample_dir()
        collector: Collector | None = None
        if options.source == "fake":
            collector, settings = await _start_fake_collector(
                stack, settings, message_log, store, samples
            )
        app = create_app(settings, store=store, message_log=message_log)
        api = asyncio.create_task(serve(app, settings.api_host, settings.api_port, stop))
        workers = [
            asyncio.create_task(Normalizer.from_settings(message_log, settings).run(stop)),
            asyncio.create_task(StoreSink(message_log, store).run(stop)),
        ]
        if settings.siem_enabled:
            siem = SiemForwarder.from_settings(message_log, settings)
            workers.append(asyncio.create_task(siem.run(stop)))
        # The demo never notifies ALERT_WEBHOOK_URL: sample data must not page a real channel.
        if settings.alerts_enabled:
            workers.append(asyncio.create_task(Alerter(message_log, store).run(stop)))
        if collector is None:
            published = await publish_replay(
                message_log, settings, samples, include_malformed=options.include_malformed
            )
            origin = str(samples)
        else:
            report = await collector.run()
            published = report.total
            origin = f"{samples} through the live collector and the local Microsoft stand-in"
            for run in report.sources:
                for problem in [*run.warnings, *([run.error] if run.error else [])]:
                    print(f"AOC demo: {run.source}: {problem}")
        await _wait_until_ingested(message_log, alerts_enabled=settings.alerts_enabled)
        reasons = await _dead_letter_reasons(message_log, dlq_start)
        stored = await store.count_events()
        if api.done():
            await api  # the API could not start (port in use…): report that, not "serving"
        url = f"http://{settings.api_host}:{settings.api_port}"
        print(f"AOC demo: published {published} raw records from {origin}")
        print(f"AOC demo: {stored} events in the store; {len(reasons)} dead letters this run:")
        for reason in reasons:
            print(f"  - {reason[:160]}")
        if settings.siem_enabled:
            print(await _siem_report(message_log, settings), flush=True)
        if settings.alerts_enabled:
            await _print_alerts(store)
        print(
            f"AOC demo: serving {url}  (UI: {url}/ · API: {url}/api/events · Ctrl-C to stop)",
            flush=True,
        )
        if options.exit_when_ingested:
            stop.set()
        await asyncio.wait([api, *workers], return_when=asyncio.FIRST_EXCEPTION)
        stop.set()
        for task in (api, *workers):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if collector is not None:
            await collector.wait_idle()
        return 0
    finally:
        stop.set()
        await stack.aclose()  # control endpoint, stand-in and its HTTP client, if any
        await store.stop()
        await message_log.stop()


async def _start_fake_collector(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    message_log: MessageLog,
    store: SqliteEventStore,
    samples: Path,
) -> tuple[Collector, Settings]:
    """Stand-in served over TLS, the live collector pointed at it, its control endpoint served."""
    fake = FakeMicrosoft(samples)
    served = await stack.enter_async_context(serve_app(fake.app, tls=True))
    fake.base_url = served.url
    http = await stack.enter_async_context(
        httpx.AsyncClient(verify=served.client_ssl or True, timeout=MICROSOFT_TIMEOUT)
    )
    settings = settings.model_copy(
        update={
            "tenant_id": fake.tenant_id,
            "client_id": fake.client_id,
            "client_secret": SecretStr(fake.client_secret),
            "authority_host": served.url,
            "graph_base_url": fake.graph_base_url,
            "management_api_base_url": fake.management_api_base_url,
        }
    )
    recorded = fake.now
    # Collect as of when the samples were recorded, so Microsoft's 7- and 30-day limits apply to them
    # as they did then (today the Management API would no longer list content from back then).
    collector = Collector(
        message_log=message_log,
        store=store,
        settings=settings,
        http=http,
        tokens=EntraTokenProvider.from_settings(settings, http),
        now=lambda: recorded or datetime.now(UTC),
    )
    control = await stack.enter_async_context(serve_app(create_control_app(collector)))
    print(
        f"AOC demo: local Microsoft stand-in at {served.url}, clock at {recorded:%Y-%m-%d %H:%M} UTC"
    )
    return collector, settings.model_copy(update={"collector_url": control.url})
