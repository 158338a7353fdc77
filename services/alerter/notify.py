"""Alert notification to a Teams- or Slack-compatible incoming webhook, with retries.

A webhook URL usually carries its own secret in its path, so it is never logged, not even inside an
error message: failures are reported by status only. A notification that still fails after its
retries is logged and counted, and the alert stays in the store and on `aoc.alerts`; a webhook that is
down must not stop alerting.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from aoc_alerter.core import webhook_payload
from aoc_common.http_retry import RetriesExhausted, RetryPolicy, request_with_retries
from aoc_common.logging import get_logger
from aoc_common.metrics import ALERT_NOTIFICATIONS
from aoc_common.rules import Alert
from aoc_common.settings import Settings

log = get_logger(__name__)
TARGET = "alert-webhook"
# Alerts are time-sensitive and a batch waits for its notifications: a few quick retries.
WEBHOOK_RETRY_POLICY = RetryPolicy(
    max_attempts=4, base_delay_s=0.5, max_delay_s=5.0, max_retry_after_s=30.0
)


class WebhookNotifier:
    """Posts one message per new alert; owns its HTTP client (`aclose` at shutdown)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        policy: RetryPolicy = WEBHOOK_RETRY_POLICY,
    ) -> None:
        self._url = url
        self._policy = policy
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookNotifier | None:
        if settings.alert_webhook_url is None:
            return None
        return cls(
            settings.alert_webhook_url.get_secret_value(),
            timeout_s=settings.alert_webhook_timeout_seconds,
        )

    async def notify(self, alerts: Sequence[Alert]) -> int:
        """Send each alert; returns how many the webhook accepted (2xx)."""
        delivered = 0
        for alert in alerts:
            try:
                response = await request_with_retries(
                    self._client,
                    "POST",
                    self._url,
                    target=TARGET,
                    policy=self._policy,
                    json=webhook_payload(alert),
                )
            except RetriesExhausted as error:
                ALERT_NOTIFICATIONS.labels("failed").inc()
                log.error("alert webhook failed", alert_id=alert.id, status=error.status)
                continue
            if response.is_success:
                ALERT_NOTIFICATIONS.labels("delivered").inc()
                delivered += 1
            else:
                ALERT_NOTIFICATIONS.labels("rejected").inc()
                log.error(
                    "alert webhook rejected the notification",
                    alert_id=alert.id,
                    status=response.status_code,
                )
        return delivered

    async def aclose(self) -> None:
        await self._client.aclose()
