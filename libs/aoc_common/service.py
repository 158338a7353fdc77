"""Process entry point shared by every service: settings, logging, signals, one clean shutdown path.

SIGINT/SIGTERM set a stop event; the service finishes the batch in hand, commits, and exits 0. A bad
setting exits 2 with one line naming the variable, never a traceback.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable

from aoc_common.logging import configure_logging, get_logger
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
    try:
        await main(settings, stop)
    except Exception:
        log.exception("stopped by an error")
        return 1
    log.info("stopped")
    return 0
