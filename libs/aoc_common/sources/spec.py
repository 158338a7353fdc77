"""What one Microsoft audit source is, as data: a `SourceSpec` per source, one module per source.

A spec says everything the rest of AOC needs to handle a source without naming it: where its records
keep their id and time, how far back the API answers, how the collector pages through it (a Graph
collection or Management Activity content blobs), how a record becomes an event (record model and
mapper), whether names are looked up in Graph, what to call it, and which bundled sample files hold
its demo data. This module holds the shapes only; it must never do I/O or name a particular source.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

if TYPE_CHECKING:
    from aoc_common.sources.mapping import Mapped, SourceMapping

# Which parties of a mapped event may carry bare directory object ids that Graph can name:
# "actor" (the actor only), "actor_and_targets", or "none" (the records name everything themselves).
NameEnrichment = Literal["none", "actor", "actor_and_targets"]

Mapper = Callable[[dict[str, Any], "SourceMapping"], "Mapped"]


@dataclass(frozen=True, slots=True)
class SourceLabels:
    """What people read about a source.

    `retention` completes "… for N days" in the warning a clamped collection window gives.
    """

    display_name: str
    description: str
    retention: str


@dataclass(frozen=True, slots=True)
class GraphRequest:
    """The first page of one Graph collection run: `{graph}/{api_version}/{path}?{params}`."""

    api_version: str
    path: str
    params: dict[str, str]


def iso_z(moment: datetime) -> str:
    """UTC ISO 8601 with a Z, the form Graph filters take."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class GraphPaging:
    """Collected from a Microsoft Graph collection: `$filter` on a time field, `$top`, and
    `@odata.nextLink` paging.

    `notified_by`: lower-case prefixes of Graph change-notification resources that hint at new records
    of this source ("" matches any resource; the longest matching prefix wins). `implicit_filter`: a
    `field/any(...)` restriction Graph applies when the request names none (the stand-in honours it).
    """

    path: str
    time_field: str
    page_size: int = 999  # Graph's largest page for audit collections: fewest round trips
    api_version: str = "v1.0"
    notified_by: tuple[str, ...] = ()
    implicit_filter: tuple[str, tuple[str, ...]] | None = None

    def first_request(
        self, start: datetime, end: datetime, options: BaseModel | None
    ) -> GraphRequest:
        """The request for the window [start, end]; a source with options may override it."""
        return GraphRequest(
            self.api_version,
            self.path,
            {"$filter": self.time_filter(start, end), "$top": str(self.page_size)},
        )

    def time_filter(self, start: datetime, end: datetime) -> str:
        field_name = self.time_field
        return f"{field_name} ge {iso_z(start)} and {field_name} le {iso_z(end)}"


@dataclass(frozen=True)
class ManagementActivityFeed:
    """Collected from the Office 365 Management Activity API: subscriptions per content type, content
    listed in ≤ 24-hour windows, each content blob a list of records."""

    content_types: tuple[str, ...]


CollectionStrategy = GraphPaging | ManagementActivityFeed


@dataclass(frozen=True)
class SourceSpec:
    """One Microsoft audit source. `id` names its raw topic (`aoc.raw.<id>`) and its events' `source`.

    `options`: a pydantic-settings class with the source's own settings (read from the environment
    under the source's prefix, e.g. `SIGNINS_…`), handed to the collection strategy.
    `summary_fields`: placeholders this source's summary templates may use besides the common ones
    (name → what it holds); its mapper fills them in `Mapped.summary_values`.
    `samples`: file name patterns of its bundled demo data in `sample_data/`, in the format its
    collection strategy answers with (Graph pages, or a Management Activity feed file).
    """

    id: str
    labels: SourceLabels
    record_id_field: str
    record_time_field: str
    history_limit: timedelta
    collection: CollectionStrategy
    record_model: type[BaseModel]
    mapper: Mapper
    name_enrichment: NameEnrichment = "none"
    samples: tuple[str, ...] = ()
    options: type[BaseModel] | None = None
    summary_fields: Mapping[str, str] = field(default_factory=dict)

    def record_id(self, payload: Any) -> str | None:
        """The record's own id, or None when it has none (or not a usable one)."""
        if not isinstance(payload, dict):
            return None
        value = payload.get(self.record_id_field)
        return value if isinstance(value, str) and value.strip() else None
