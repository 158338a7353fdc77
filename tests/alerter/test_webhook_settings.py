"""ALERT_WEBHOOK_URL is validated like every setting and, being a secret, never shown."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from aoc_alerter.notify import WebhookNotifier
from aoc_common.http_retry import RetryPolicy
from aoc_common.rules import Alert
from aoc_common.settings import ConfigurationError, load_settings
from tests.utils.webhook_receiver import running_receiver


def test_a_webhook_url_that_is_not_http_stops_start_up_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(alert_webhook_url="ftp://hooks.example/T0/B0/do-not-print")

    message = str(raised.value)
    assert "ALERT_WEBHOOK_URL" in message
    assert "do-not-print" not in message


def test_the_webhook_is_off_unless_configured() -> None:
    assert WebhookNotifier.from_settings(load_settings(alert_webhook_url=None)) is None
    assert "s3cr3t" not in repr(load_settings(alert_webhook_url="https://hooks.example/s3cr3t"))


async def test_a_failing_webhook_is_logged_by_status_never_by_its_url() -> None:
    alert = Alert(
        id="alert-1",
        rule_id="r",
        rule_name="Rule",
        severity="low",
        created_at="2026-11-20T00:00:00Z",  # type: ignore[arg-type]
        summary="s",
        event_ids=["e"],
    )
    async with running_receiver("/hooks/T000/B000/s3cr3t-key") as receiver:
        receiver.fail_next(500, 500, 404)
        notifier = WebhookNotifier(receiver.url, policy=RetryPolicy(2, 0.01, 0.02))
        with capture_logs() as logs:
            assert await notifier.notify([alert, alert]) == 0  # 500, 500: exhausted; 404: rejected
        await notifier.aclose()

    assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == [
        "alert webhook failed",
        "alert webhook rejected the notification",
    ]
    assert [entry.get("status") for entry in logs if entry["log_level"] == "error"] == [500, 404]
    assert "s3cr3t" not in repr(logs)
