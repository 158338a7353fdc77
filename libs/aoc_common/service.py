"""What every service is to the processes that run it, and the process entry point they share.

Each service package has a public `service` module exposing `build(settings, engines)` (the one place
the service is wired: its settings, its engines, its clients) and a `DEFINITION` naming it, saying
whether it uses the event store and when it is switched off. `python -m aoc_<service>`, `aoc run
<service>`, `aoc demo` (every service on one pair of embedded engines) and the tests all go through
`build`, so a service is never wired twice.

Process entry (`run_service`): settings, logging, signals, the metrics endpoint, one clean shutdown
path. SIGINT/SIGTERM set a stop event; the service finishes the batch in hand, commits, and exits 0. A
bad setting exits 2 with one line naming the variable; a path it cannot use or an engine it cannot
reach exits 1 with one log line naming the setting and the cause (aoc_common.operator_errors).
Tracebacks only with `aoc --debug` or LOG_LEVEL=DEBUG.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import start_http_server

from aoc_common.engines import Engines, open_engines
from aoc_common.logging import configure_logging, get_logger
from aoc_common.operator_errors import describe_failure, tracebacks_shown
from aoc_common.settings import ConfigurationError, Settings, load_settings


class Service(Protocol):
    """A built service: runs until `stop` is set, then finishes what it holds and returns."""

    async def run(self, stop: asyncio.Event) -> None: ...


Build = Callable[[Settings, Engines], Service]


def always_on(settings: Settings) -> str | None:
    return None


def always(settings: Settings) -> bool:
    return True


@dataclass(frozen=True)
class ServiceDefinition:
    """A service as `aoc run`, `aoc demo` and process supervisors see it."""

    name: str
    build: Build
    uses_store: bool = True
    uses_log: Callable[[Settings], bool] = always
    """Whether the service reads or writes through AOC's message log (the Faust app has its own)."""
    off_because: Callable[[Settings], str | None] = always_on
    """Why the settings switch the service off (e.g. "SIEM_ENABLED is false"), or None when on."""

    @property
    def client_id(self) -> str:
        """How the service introduces itself to the broker (aoc-siem-forwarder, …)."""
        return "aoc-" + self.name.replace("_", "-")


async def serve(definition: ServiceDefinition, settings: Settings, stop: asyncio.Event) -> None:
    """Open the engines the service uses, build it and run it until `stop`.

    A service the settings switch off idles until `stop` without opening any engine: a container that
    exits would be restarted in a loop by its supervisor, and turning the setting on then restarting
    is all it takes to start it.
    """
    log = get_logger(definition.name)
    reason = definition.off_because(settings)
    if reason is not None:
        log.warning(reason)
        await stop.wait()
        return
    async with open_engines(
        settings,
        client_id=definition.client_id,
        log=definition.uses_log(settings),
        store=definition.uses_store,
    ) as engines:
        await definition.build(settings, engines).run(stop)


def run_service(definition: ServiceDefinition, settings: Settings | None = None) -> int:
    """Run the service in this process until it returns or is asked to stop; returns the exit code."""
    try:
        settings = settings or load_settings()
    except ConfigurationError as error:
        print(error.code, file=sys.stderr)
        return 2
    configure_logging(definition.name, settings.log_level)
    return asyncio.run(_run(definition, settings))


async def _run(definition: ServiceDefinition, settings: Settings) -> int:
    log = get_logger(definition.name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "starting",
        log_engine=settings.resolved_log_engine,
        store_engine=settings.resolved_store_engine if definition.uses_store else None,
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
        await serve(definition, settings, stop)
    except ConfigurationError as error:
        # A setting only the service itself can check (a file that must exist where it runs).
        print(error.code, file=sys.stderr)
        return 2
    except Exception as error:
        if tracebacks_shown(settings):
            log.exception("stopped by an error")
        else:
            log.error("stopped by an error", error=describe_failure(error, settings))
        return 1
    log.info("stopped")
    return 0
