"""Reading a source's bundled sample files (`sample_data/`), in the format its API answers with.

Graph sources keep pages (`{"value": [...]}`); the Management Activity API keeps one feed file with
the content listing and the blobs it points to. The replay publishes these records, the Microsoft
stand-in serves them, and the benchmarks shape their synthetic records on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from aoc_common.sources.spec import GraphPaging, ManagementActivityFeed, SourceSpec


@dataclass
class FeedSample:
    """A saved Management Activity feed: the content listing and each content id's blob."""

    content_list: list[dict[str, Any]] = field(default_factory=list)
    blobs: dict[str, list[Any]] = field(default_factory=dict)

    def records(self) -> list[Any]:
        """Every record, in listing order (as the collector would fetch them)."""
        found: list[Any] = []
        for content in self.content_list:
            found += self.blobs.get(content.get("contentId", ""), [])
        return found


def sample_files(spec: SourceSpec, directory: Path) -> list[Path]:
    """The source's sample files in `directory`, sorted by name within each pattern."""
    files: list[Path] = []
    for pattern in spec.samples:
        files += sorted(directory.glob(pattern))
    return files


def graph_sample_records(spec: SourceSpec, directory: Path) -> list[Any]:
    """The records of every saved Graph page of the source, page by page."""
    records: list[Any] = []
    for page in sample_files(spec, directory):
        body = orjson.loads(page.read_bytes())
        if isinstance(body, dict) and isinstance(body.get("value"), list):
            records += body["value"]
    return records


def feed_sample(spec: SourceSpec, directory: Path) -> FeedSample:
    """The source's saved Management Activity feed (empty when it has no sample file)."""
    sample = FeedSample()
    for path in sample_files(spec, directory):
        feed = orjson.loads(path.read_bytes())
        sample.content_list += list(feed.get("content_list", []))
        sample.blobs.update(feed.get("blobs", {}))
    return sample


def sample_records(spec: SourceSpec, directory: Path) -> list[Any]:
    """Every sample record of the source, in the order the live collector would fetch them."""
    if isinstance(spec.collection, GraphPaging):
        return graph_sample_records(spec, directory)
    if isinstance(spec.collection, ManagementActivityFeed):
        return feed_sample(spec, directory).records()
    raise TypeError(f"no sample format for {type(spec.collection).__name__}")
