"""Source health: how each Microsoft source's last collection went, as the collector stores it.

The collector writes one state document per source in the event store after every run; the API
reads them for `GET /api/source-health` without importing the collector. This module is the shape
both sides agree on (contracts.md §2) and must stay free of I/O other than the store calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from aoc_common.event_store.base import EventStore
from aoc_common.events import Source
from aoc_common.sources import SOURCES

# `replayed`: `aoc demo` fed the source from saved samples; the live collector has not run it.
HealthStatus = Literal["ok", "error", "never_run", "replayed"]


class SourceHealth(BaseModel):
    """The last run of one source. `watermark` is where the next run starts (before overlap)."""

    source: Source
    status: HealthStatus = "never_run"
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_count: int = 0
    watermark: datetime | None = None
    warnings: list[str] = Field(default_factory=list)


def replayed_health(source: Source, count: int, origin: str, at: datetime) -> SourceHealth:
    """What the demo records for a source it fed from saved samples instead of collecting it, so that
    the Sources view says "replayed from samples" rather than "never run" (which reads as broken)."""
    return SourceHealth(
        source=source,
        status="replayed",
        last_run_at=at,
        last_success_at=at,
        last_count=count,
        warnings=[f"replayed from samples ({origin}); the live collector has not run"],
    )


def source_health_key(source: Source) -> str:
    return f"collector:source_health:{source}"


async def read_source_health(store: EventStore) -> list[SourceHealth]:
    """Every source, in the registry's order; `never_run` when unknown."""
    result = []
    for source in SOURCES:
        document = await store.get_state(source_health_key(source))
        try:
            health = SourceHealth.model_validate({**(document or {}), "source": source})
        except ValidationError as error:
            health = SourceHealth(
                source=source, status="error", last_error=f"unreadable health record: {error}"
            )
        result.append(health)
    return result


async def write_source_health(store: EventStore, health: SourceHealth) -> None:
    await store.put_state(source_health_key(health.source), health.model_dump(mode="json"))
