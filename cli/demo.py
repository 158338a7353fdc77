"""`aoc demo`: every service on one pair of embedded engines, fed with the bundled samples, then the UI
served until Ctrl-C.

The consuming services (normalizer, store sink, alerter, SIEM forwarder) each run in a child process of
their own, as `aoc run` would start them (cli/service_process.py), so their stages overlap on separate
cores; the feed, the report and the API run in the demo's own process. Children log to
`<data dir>/logs/<service>.log` and stop with the demo.

The demo is a list of the services' own builds (`build(settings, engines)`, as `aoc run` uses them),
a feed, and a report (demo_report.py). The feed is the replay of the samples, or with `--source fake`
the live collector collecting over HTTPS from the local stand-in of Entra ID, Graph and the Management
Activity API, whose control endpoint is wired to the API (COLLECTOR_URL) so that
`/api/fetch-audit-logs` and `/api/source-health` work as they do in production.

What differs from production is settings only, and on purpose: the embedded engines whatever the
environment says (the demo must never write into a production Kafka or MongoDB), no alert webhook
(sample data must not page a real channel), no Graph name lookups (the samples' ids are in no tenant),
one collection instead of a schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from aoc_alerter import service as alerter_service
from aoc_cli import demo_report as report
from aoc_cli.service_process import ServiceProcess
from aoc_cli.services import definition
from aoc_collector.service import (
    CollectorService,
    ReplayFeed,
    build_replay,
    bundled_sample_dir,
    serve_stand_in,
)
from aoc_collector.service import build as build_collector
from aoc_common import topics
from aoc_common.engines import Engines, open_engines
from aoc_common.logging import configure_logging
from aoc_common.operator_errors import describe_failure, tracebacks_shown
from aoc_common.settings import ConfigurationError, Settings, load_settings

# The services the demo runs beside its feed, each built as `aoc run` builds it (those the settings
# switch off, e.g. the SIEM forwarder without SIEM_ENABLED, are left out).
SERVICES = ("normalizer", "store", "siem_forwarder", "alerter", "api")
# The sample tenant's own mail domains: what the Sigma rules' %internal_domains% is in the demo.
DEMO_INTERNAL_DOMAINS = ["contoso.com", "contoso.onmicrosoft.com"]


@dataclass(frozen=True)
class DemoOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".aoc-data/demo")
    samples: Path | None = None
    include_malformed: bool = True
    exit_when_ingested: bool = False
    source: str = "samples"  # or "fake": the live collector against the local Microsoft stand-in


def demo_overrides(options: DemoOptions) -> dict[str, object]:
    """What the demo decides for itself on top of the environment (see the module docstring)."""
    return {
        "log_engine": "embedded",
        "store_engine": "embedded",
        "data_dir": options.data_dir,
        "api_host": options.host,
        "api_port": options.port,
        "alert_webhook_url": None,
        "enrichment_enabled": False,
        "enable_periodic_fetch": False,
        "collector_control_port": 0,
        "metrics_port": None,  # several processes: one port could serve only one of them
        # AOC's own Sigma rules beside the native ones (and the environment's SIGMA_RULES_PATH).
        "sigma_rules_path": os.pathsep.join(
            part
            for part in (
                str(alerter_service.bundled_sigma_rules()),
                os.environ.get("SIGMA_RULES_PATH", ""),
            )
            if part
        ),
        "sigma_placeholders": {"internal_domains": DEMO_INTERNAL_DOMAINS, **_env_placeholders()},
    }


def _env_placeholders() -> dict[str, object]:
    """SIGMA_PLACEHOLDERS from the environment, when it is a JSON object (the settings model reports
    any other value as the configuration error it is)."""
    try:
        value = json.loads(os.environ.get("SIGMA_PLACEHOLDERS") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def demo_settings(options: DemoOptions) -> Settings:
    """The environment's settings with the demo's own decisions applied."""
    return load_settings(**demo_overrides(options))


def run_demo(options: DemoOptions) -> int:
    try:
        settings = demo_settings(options)
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


async def _demo(settings: Settings, options: DemoOptions) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    samples = options.samples or bundled_sample_dir()
    tasks: list[asyncio.Task[None]] = []
    async with (
        open_engines(settings, client_id="aoc-demo") as engines,
        contextlib.AsyncExitStack() as stack,
    ):
        try:
            await engines.message_log.ensure_topics(topics.ALL_TOPICS)
            dlq_start = await engines.message_log.end_offsets(topics.DLQ)
            feed: CollectorService | ReplayFeed
            if options.source == "fake":
                stand_in = await stack.enter_async_context(serve_stand_in(samples))
                print(report.stand_in_line(stand_in.url, stand_in.now()))
                feed = build_collector(settings, engines, stand_in=stand_in)
            else:
                feed = build_replay(
                    settings, engines, samples, include_malformed=options.include_malformed
                )
            await _run(settings, engines, options, stop, tasks, dlq_start, feed, str(samples))
        finally:
            stop.set()
            for task in tasks:  # each finishes what it holds; errors were raised above already
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await task
    return 0


async def _run(
    settings: Settings,
    engines: Engines,
    options: DemoOptions,
    stop: asyncio.Event,
    tasks: list[asyncio.Task[None]],
    dlq_start: dict[int, int],
    feed: CollectorService | ReplayFeed,
    samples: str,
) -> None:
    """Start the services, feed them, report what became of the feed, serve until `stop`."""
    if isinstance(feed, CollectorService):
        collecting = asyncio.create_task(feed.run(stop), name="collector")
        tasks.append(collecting)
        await _until(feed.serving, collecting)
        settings = feed.settings.model_copy(update={"collector_url": feed.control_url})
    api = _start(settings, engines, demo_overrides(options), stop, tasks)
    if isinstance(feed, CollectorService):
        await _until(feed.collected, collecting)
        assert feed.first_report is not None
        published = feed.first_report.total
        origin = f"{samples} through the live collector and the local Microsoft stand-in"
        problems = [
            (run.source, problem)
            for run in feed.first_report.sources
            for problem in [*run.warnings, *([run.error] if run.error else [])]
        ]
        for line in report.collection_problem_lines(problems):
            print(line)
    else:
        await feed.run(stop)
        assert feed.published is not None
        published, origin = feed.published, samples
    await _report(settings, engines, dlq_start, published, origin)
    if api.done():
        await api  # the API could not start (port in use…): report that, not "serving"
    range_line = report.time_range_line(settings, await report.stored_time_range(engines.store))
    if range_line is not None:
        print(range_line)
    print(report.serving_line(settings), flush=True)
    if options.exit_when_ingested:
        stop.set()
    await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    stop.set()
    for task in tasks:
        await task


def _start(
    settings: Settings,
    engines: Engines,
    overrides: dict[str, object],
    stop: asyncio.Event,
    tasks: list[asyncio.Task[None]],
) -> asyncio.Task[None]:
    """Every service of SERVICES the settings leave on, running; returns the API's task.

    The API runs here (it serves the demo's own settings, e.g. the stand-in collector's URL); every
    other service in a child process of its own, with the same settings.
    """
    api: asyncio.Task[None] | None = None
    for name in SERVICES:
        service = definition(name)
        if service.off_because(settings) is not None:
            continue
        if name == "api":
            running = service.build(settings, engines).run(stop)
        else:
            log_path = settings.data_dir / "logs" / f"{name}.log"
            running = ServiceProcess(name, overrides, log_path).run(stop)
        task = asyncio.create_task(running, name=name)
        tasks.append(task)
        if name == "api":
            api = task
    assert api is not None
    return api


async def _report(
    settings: Settings,
    engines: Engines,
    dlq_start: dict[int, int],
    published: int,
    origin: str,
) -> None:
    message_log = engines.message_log
    await report.wait_until_ingested(message_log, alerts_enabled=settings.alerts_enabled)
    reasons = await report.dead_letter_reasons(message_log, dlq_start)
    stored = await engines.store.count_events()
    for line in report.ingest_lines(published, origin, stored, reasons):
        print(line)
    if settings.siem_enabled:
        lag = await report.siem_lag_after_catch_up(message_log)
        print(report.siem_line(lag, settings), flush=True)
    if settings.alerts_enabled:
        for line in report.alert_lines(*await report.stored_alerts(engines.store)):
            print(line)


async def _until(event: asyncio.Event, task: asyncio.Task[None]) -> None:
    """Until `event` is set; raises what stopped `task` if it ended first."""
    waiter = asyncio.create_task(event.wait())
    await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
    if not waiter.done():
        waiter.cancel()
        await task  # raises its error
        raise RuntimeError(f"{task.get_name()} stopped before it was ready")
