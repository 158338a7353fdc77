"""The live collector against the local Microsoft stand-in, served over TLS on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from aoc_collector.fake_microsoft import FakeMicrosoft
from aoc_collector.serving import serve_app
from aoc_common.engines import Engines
from tests.utils.collector import Harness, build_harness


@pytest.fixture
async def fake_server(
    fixtures_dir: Path,
) -> AsyncIterator[tuple[FakeMicrosoft, str, httpx.AsyncClient]]:
    fake = FakeMicrosoft(fixtures_dir)
    async with serve_app(fake.app, tls=True) as served:
        fake.base_url = served.url
        async with httpx.AsyncClient(verify=served.client_ssl or True) as http:
            yield fake, served.url, http


@pytest.fixture
def harness(fake_server: tuple[FakeMicrosoft, str, httpx.AsyncClient], engines: Engines) -> Harness:
    """The collector under test on `engines` (embedded, unless the test is marked every_engine_kind)."""
    return build_harness(fake_server, engines.message_log, engines.store)
