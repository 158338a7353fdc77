"""Browser-test fixtures: Debian's chromium driven by Playwright, the real API serving the fixture
events from an embedded store on a loopback port, and pages that fail the test on any console error,
uncaught exception, failed request or HTTP error response."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from aoc_api.app import create_app
from aoc_common.settings import Settings
from tests.utils.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    TIMEOUT_MS,
    WatchedPages,
    stored_fixtures,
)
from tests.utils.local_servers import serving

# Assertions wait as long as actions: with 3 test processes on 2 shared cores a sign-in's redirects
# or a first page can take longer than Playwright's 5 s default. Only a failing assertion waits.
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One chromium for the browser tests. Playwright's sync API runs an event loop on the main
    thread while it lives: package scope ends it before any asyncio test runs after these."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed (.ci/run installs it)", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def aoc_url(tmp_path: Path, fixtures_dir: Path) -> Iterator[str]:
    stored_fixtures(tmp_path, fixtures_dir)
    app = create_app(Settings(data_dir=tmp_path, retention_days=3650))
    with serving(app) as url:
        yield url


@pytest.fixture
def pages(browser: Browser) -> Iterator[WatchedPages]:
    """Open pages with `pages.open()`; the test fails if any of them saw an error."""
    watched = WatchedPages(browser)
    yield watched
    problems = watched.unexpected()
    for page in watched.pages:
        page.close()
    assert problems == [], "the browser saw errors"
