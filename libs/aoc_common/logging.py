"""Structured JSON logs: one line per event, always with the service name and any bound correlation ids.

Never log a settings object or a token: secrets are SecretStr and must stay out of log lines.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_configured_level: str | None = None


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route structlog and the standard library through one JSON renderer on stderr."""
    global _configured_level
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*processors, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(service=service)
    if _configured_level != level:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer(),
                ],
                foreign_pre_chain=processors,
            )
        )
        root = logging.getLogger()
        root.handlers = [handler]
        root.setLevel(level)
        _configured_level = level


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


def bind_correlation(**ids: str | int | None) -> None:
    """Attach ids (source, topic, offset, request id…) to every log line of the current task."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in ids.items() if v is not None})
