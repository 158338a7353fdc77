"""Topic names, in one place so that producers and consumers can never disagree on a spelling."""

from __future__ import annotations

from aoc_common.events import Source
from aoc_common.sources import SOURCES

RAW_PREFIX = "aoc.raw."
EVENTS = "aoc.events"
# Optional (OCSF_TOPIC_ENABLED): every event of aoc.events as an OCSF 1.7.0 event, same key.
EVENTS_OCSF = "aoc.events.ocsf"
ALERTS = "aoc.alerts"
DLQ = "aoc.dlq"


def raw_topic(source: Source) -> str:
    """`aoc.raw.<source>`: records exactly as the Microsoft API returned them."""
    return f"{RAW_PREFIX}{source}"


RAW_TOPICS: tuple[str, ...] = tuple(raw_topic(source) for source in SOURCES)
ALL_TOPICS: tuple[str, ...] = (*RAW_TOPICS, EVENTS, ALERTS, DLQ, EVENTS_OCSF)


def source_of_raw_topic(topic: str) -> Source | None:
    """The source a raw topic carries, or None for any other topic."""
    name = topic.removeprefix(RAW_PREFIX)
    return name if topic.startswith(RAW_PREFIX) and name in SOURCES else None


# Consumer groups: each consumer of a topic is its own group, so each keeps its own offsets and can lag,
# fail or be replayed without touching the others.
NORMALIZER_GROUP = "aoc-normalizer"
STORE_GROUP = "aoc-store"
ALERTER_GROUP = "aoc-alerter"
SIEM_FORWARDER_GROUP = "aoc-siem-forwarder"
OCSF_PUBLISHER_GROUP = "aoc-ocsf-publisher"
