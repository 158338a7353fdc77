"""Fixtures every test area shares: the shared sample fixtures and the engines (tests/engines: the
`engines` fixture, and the Tansu and SecantusDB servers behind its Kafka + MongoDB kind).

Builders and stand-ins that tests import live in tests/utils; no test module imports another."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aoc_common.sources import all_sources
from aoc_common.sources.samples import sample_files

pytest_plugins = [
    "tests.engines.kafka_server",
    "tests.engines.mongo_server",
    "tests.engines.fixture",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"
BUNDLED_FIXTURES = REPO_ROOT / "services" / "collector" / "sample_data"


@pytest.fixture(scope="session")
def fixtures_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """../shared/fixtures when present (CI has it beside the clone), else the copy bundled for the demo.

    Sources the shared fixtures hold no files for (the Entra sign-in logs) come from the bundled
    samples, so every test sees the same records wherever it runs.
    """
    if not FIXTURES.is_dir():
        return BUNDLED_FIXTURES
    merged = tmp_path_factory.mktemp("fixtures")
    for path in FIXTURES.glob("*.json"):
        shutil.copyfile(path, merged / path.name)
    for spec in all_sources():
        if not sample_files(spec, FIXTURES):
            for path in sample_files(spec, BUNDLED_FIXTURES):
                shutil.copyfile(path, merged / path.name)
    return merged
