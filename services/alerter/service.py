"""The alerter as a service: `aoc.events` → alert rules → alerts (store, `aoc.alerts`, the webhook),
as consumer group aoc-alerter."""

from __future__ import annotations

from aoc_alerter.notify import WebhookNotifier
from aoc_alerter.runtime import Alerter
from aoc_alerter.sigma_loading import bundled_sigma_rules, sigma_paths
from aoc_common.engines import Engines
from aoc_common.service import ServiceDefinition
from aoc_common.settings import Settings


def build(settings: Settings, engines: Engines) -> Alerter:
    """The alerter, notifying ALERT_WEBHOOK_URL when it is set (the alerter closes the notifier),
    with the Sigma rules of SIGMA_RULES_PATH."""
    return Alerter(
        engines.message_log,
        engines.store,
        notifier=WebhookNotifier.from_settings(settings),
        sigma_paths=sigma_paths(settings.sigma_rules_path),
        sigma_placeholders=settings.sigma_placeholders,
    )


def off_because(settings: Settings) -> str | None:
    if settings.alerts_enabled:
        return None
    return "ALERTS_ENABLED=false: not evaluating alert rules"


__all__ = ["DEFINITION", "build", "bundled_sigma_rules", "off_because"]

DEFINITION = ServiceDefinition("alerter", build, off_because=off_because)
