"""Prometheus metrics every service exposes, declared once so that names and labels stay consistent.

Each service labels its series with `service`; an operator can then compare the normalizer, the store sink,
the alerter and the SIEM forwarder on one dashboard.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

MESSAGES_CONSUMED = Counter(
    "aoc_messages_consumed_total", "Messages read from a topic", ["service", "topic"]
)
MESSAGES_PUBLISHED = Counter(
    "aoc_messages_published_total", "Messages acknowledged by the message log", ["service", "topic"]
)
DEAD_LETTERS = Counter(
    "aoc_dead_letters_total", "Messages sent to the dead-letter topic", ["service", "stage"]
)
EVENTS_STORED = Counter(
    "aoc_events_stored_total", "Events written to the store", ["service", "outcome"]
)
CONSUMER_LAG = Gauge(
    "aoc_consumer_lag_messages",
    "Messages not yet committed by a consumer group",
    ["group", "topic"],
)
BATCH_SECONDS = Histogram(
    "aoc_batch_seconds",
    "Time to handle one consumed batch",
    ["service"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_REQUESTS = Counter("aoc_http_requests_total", "API requests", ["method", "route", "status"])
HTTP_RETRIES = Counter(
    "aoc_http_retries_total",
    "Outbound HTTP attempts that were retried, by peer and by what went wrong",
    ["target", "reason"],
)

# --- alerter ---
ALERTS_RAISED = Counter("aoc_alerts_raised_total", "New alerts stored by the alerter", ["severity"])
ALERT_NOTIFICATIONS = Counter(
    "aoc_alert_notifications_total", "Alert webhook notifications, by outcome", ["outcome"]
)
RULE_REGEX_TIMEOUTS = Counter(
    "aoc_rule_regex_timeouts_total", "Rule regular expressions stopped by their timeout"
)


# --- SIEM forwarder (dead letters: DEAD_LETTERS{service="siem_forwarder"}; lag: CONSUMER_LAG) ---
SIEM_EVENTS_FORWARDED = Counter(
    "aoc_siem_events_forwarded_total", "Events the SIEM acknowledged", ["format"]
)
SIEM_RETRIES = Counter(
    "aoc_siem_retries_total",
    "Deliveries to the SIEM that were tried again, by format and by what went wrong",
    ["format", "reason"],
)
SIEM_BATCH_SECONDS = Histogram(
    "aoc_siem_batch_seconds",
    "Time from sending a batch to the SIEM until it acknowledged it, retries included",
    ["format"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SIEM_CIRCUIT_OPEN = Gauge(
    "aoc_siem_circuit_open", "1 while the circuit breaker stops calls to the SIEM", ["format"]
)


# --- normalizer: dedupe, enrichment, mapping reloads ---
DUPLICATES_DROPPED = Counter(
    "aoc_duplicates_dropped_total",
    "Events not republished because their dedupe_key was seen inside the dedupe window",
    ["service"],
)
ENRICHMENT_PENDING = Counter(
    "aoc_enrichment_pending_total",
    "Events published with directory ids Graph could not resolve yet",
    ["service"],
)
ENRICHMENT_LOOKUPS = Counter(
    "aoc_enrichment_lookups_total",
    "Graph getByIds calls, by outcome (answered, refused, unavailable)",
    ["outcome"],
)
UNKNOWN_CATEGORIES = Counter(
    "aoc_unknown_record_types_total",
    "Records whose category (a Management Activity RecordType, a directory or Intune category) "
    "mappings.yml has no label for yet; the event shows it as e.g. 'RecordType 123'",
    ["source", "value"],
)
MAPPINGS_RELOADS = Counter(
    "aoc_mappings_reloads_total",
    "Reloads of mappings.yml, by outcome (applied, rejected)",
    ["outcome"],
)


def render_latest() -> tuple[bytes, str]:
    """The exposition body and its content type, for a `/metrics` endpoint."""
    return generate_latest(), CONTENT_TYPE_LATEST
