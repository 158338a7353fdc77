"""The message log: Kafka in production, an embedded SQLite log on one machine (see base.py)."""

from __future__ import annotations

from aoc_common.message_log.base import Message, MessageLog, MessageLogError, Record, Subscription
from aoc_common.settings import Settings

__all__ = ["Message", "MessageLog", "MessageLogError", "Record", "Subscription", "open_message_log"]


def open_message_log(settings: Settings, *, client_id: str = "aoc") -> MessageLog:
    """The engine the settings choose (not started yet: call `start()`)."""
    if settings.resolved_log_engine == "kafka":
        from aoc_common.message_log.kafka import KafkaMessageLog

        return KafkaMessageLog.from_settings(settings, client_id=client_id)
    from aoc_common.message_log.embedded import EmbeddedMessageLog

    return EmbeddedMessageLog(settings.data_dir / "log.sqlite3")
