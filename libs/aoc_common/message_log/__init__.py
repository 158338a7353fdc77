"""The message log: Kafka in production, an embedded SQLite log on one machine (see base.py)."""

from __future__ import annotations

from aoc_common.message_log.base import Message, MessageLog, MessageLogError, Record, Subscription
from aoc_common.settings import Settings

__all__ = ["Message", "MessageLog", "MessageLogError", "Record", "Subscription", "open_message_log"]


def open_message_log(settings: Settings, *, client_id: str = "aoc") -> MessageLog:
    """The engine the settings choose (not started yet: call `start()`)."""
    if settings.resolved_log_engine == "kafka":
        from aoc_common.message_log.kafka import KafkaMessageLog

        assert settings.kafka_bootstrap_servers is not None
        return KafkaMessageLog(
            settings.kafka_bootstrap_servers,
            client_id=client_id,
            enable_idempotence=settings.kafka_enable_idempotence,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
            request_timeout_ms=settings.kafka_request_timeout_ms,
            default_partitions=settings.kafka_topic_partitions,
            replication_factor=settings.kafka_replication_factor,
        )
    from aoc_common.message_log.embedded import EmbeddedMessageLog

    return EmbeddedMessageLog(settings.data_dir / "log.sqlite3")
