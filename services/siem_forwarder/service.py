"""The SIEM forwarder as a service: `aoc.events` → the SIEM (SIEM_FORMAT transport, SIEM_SCHEMA
aoc | ecs | ocsf), as consumer group aoc-siem-forwarder; and, with OCSF_TOPIC_ENABLED, every event as
OCSF on `aoc.events.ocsf` (group aoc-ocsf-publisher). It never touches the event store."""

from __future__ import annotations

from aoc_common.engines import Engines
from aoc_common.logging import get_logger
from aoc_common.service import Service, ServiceDefinition
from aoc_common.settings import Settings
from aoc_siem_forwarder.ocsf_topic import OcsfPublisher, Together
from aoc_siem_forwarder.runtime import SiemForwarder

log = get_logger(__name__)


def build(settings: Settings, engines: Engines) -> Service:
    services: list[Service] = []
    if settings.siem_enabled:
        forwarder = SiemForwarder.from_settings(engines.message_log, settings)
        log.info(
            "forwarding",
            format=settings.siem_format,
            schema=settings.siem_schema,
            group=forwarder.group,
        )
        services.append(forwarder)
    if settings.ocsf_topic_enabled:
        log.info("publishing OCSF", topic="aoc.events.ocsf")
        services.append(OcsfPublisher(engines.message_log))
    return services[0] if len(services) == 1 else Together(services)


def off_because(settings: Settings) -> str | None:
    if settings.siem_enabled or settings.ocsf_topic_enabled:
        return None
    # It never joins the consumer group idle: offsets wait where they are until it is enabled.
    return (
        "SIEM_ENABLED is false (and OCSF_TOPIC_ENABLED too): forwarding nothing until restarted "
        "with either set to true"
    )


DEFINITION = ServiceDefinition("siem_forwarder", build, uses_store=False, off_because=off_because)
