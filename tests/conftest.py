"""Fixtures every test area shares: the shared sample fixtures and the engines (tests/engines: the
`engines` fixture, and the Tansu and SecantusDB servers behind its Kafka + MongoDB kind).

Builders and stand-ins that tests import live in tests/utils; no test module imports another."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.engines.kafka_server",
    "tests.engines.mongo_server",
    "tests.engines.fixture",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"
BUNDLED_FIXTURES = REPO_ROOT / "services" / "collector" / "sample_data"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """../shared/fixtures when present (CI has it beside the clone), else the copy bundled for the demo."""
    return FIXTURES if FIXTURES.is_dir() else BUNDLED_FIXTURES
