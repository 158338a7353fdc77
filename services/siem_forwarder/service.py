"""The SIEM forwarder as a service: `aoc.events` → the SIEM (SIEM_FORMAT), as consumer group
aoc-siem-forwarder. It never touches the event store."""

from __future__ import annotations

from aoc_common.engines import Engines
from aoc_common.logging import get_logger
from aoc_common.service import ServiceDefinition
from aoc_common.settings import Settings
from aoc_siem_forwarder.runtime import SiemForwarder

log = get_logger(__name__)


def build(settings: Settings, engines: Engines) -> SiemForwarder:
    forwarder = SiemForwarder.from_settings(engines.message_log, settings)
    log.info("forwarding", format=settings.siem_format, group=forwarder.group)
    return forwarder


def off_because(settings: Settings) -> str | None:
    if settings.siem_enabled:
        return None
    # It never joins the consumer group idle: offsets wait where they are until it is enabled.
    return "SIEM_ENABLED is false: forwarding nothing until restarted with it set to true"


DEFINITION = ServiceDefinition("siem_forwarder", build, uses_store=False, off_because=off_because)
