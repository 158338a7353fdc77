"""Process entry point shared by every service: settings, logging, signals, one clean shutdown path.

SIGINT/SIGTERM set a stop event; the service finishes the batch in hand, commits, and exits 0. A bad
setting exits 2 with one line naming the variable; a path it cannot use or an engine it cannot reach
exits 1 with one log line naming the setting and the cause (aoc_common.operator_errors). Tracebacks
only with `aoc --debug` or LOG_LEVEL=DEBUG.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable

from prometheus_client import start_http_server

from aoc_common.logging import configure_logging, get_logger
from aoc_common.operator_errors import describe_failure, tracebacks_shown
from aoc_common.settings import ConfigurationError, Settings, load_settings

ServiceMain = Callable[[Settings, asyncio.Event], Awaitable[None]]


def run_service(name: str, main: ServiceMain, settings: Settings | None = None) -> int:
    """Run `main` until it returns or the process is asked to stop; returns the exit code."""
    try:
        settings = settings or load_settings()
    except ConfigurationError as error:
        print(error.code, file=sys.stderr)
        return 2
    configure_logging(name, settings.log_level)
    return asyncio.run(_run(name, main, settings))


async def _run(name: str, main: ServiceMain, settings: Settings) -> int:
    log = get_logger(name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "starting",
        log_engine=settings.resolved_log_engine,
        store_engine=settings.resolved_store_engine,
    )
    if settings.metrics_port is not None:
        # Consumers have no HTTP server of their own; without this their lag, retries and dead
        # letters would be invisible outside `aoc demo`.
        try:
            start_http_server(settings.metrics_port, addr=settings.metrics_host)
        except OSError as error:
            log.error(
                "metrics endpoint could not start",
                error=f"METRICS_PORT={settings.metrics_port}: {error.strerror or error}",
            )
            return 1
        log.info("serving metrics", host=settings.metrics_host, port=settings.metrics_port)
    try:
        await main(settings, stop)
    except Exception as error:
        if tracebacks_shown(settings):
            log.exception("stopped by an error")
        else:
            log.error("stopped by an error", error=describe_failure(error, settings))
        return 1
    log.info("stopped")
    return 0
