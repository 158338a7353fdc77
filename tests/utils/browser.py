"""What the browser tests share: the data they store, pages that record every sign of trouble, and
screenshots.

Screenshots land in test-artifacts/ (gitignored). With AOC_README_SCREENSHOTS=1 the screenshots the
README shows are also written to docs/screenshots/ (committed), so they are always what the test saw.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Locator, Page

from aoc_common.event_store.sqlite import SqliteEventStore
from aoc_common.events import CanonicalEvent
from aoc_common.rules import Alert
from aoc_common.source_health import SourceHealth, write_source_health
from tests.utils.records import fixture_events

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
README_SCREENSHOTS = REPO / "docs" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000
WIDE = {"width": 1400, "height": 900}
NARROW = {"width": 800, "height": 900}

FORWARDING_ALERT = "alert-forwarding-1"
UNIFIED_ERROR = (
    "management-api: GET https://manage.office.com/api/v1.0/x failed after 5 attempts: HTTP 503"
)
ALERTED_AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def an_alert(
    alert_id: str, rule: str, name: str, severity: str, events: list[CanonicalEvent]
) -> Alert:
    newest = max(events, key=lambda e: (e.timestamp, e.id))
    return Alert.model_validate(
        {
            "id": alert_id,
            "rule_id": rule,
            "rule_name": name,
            "severity": severity,
            "created_at": ALERTED_AT,  # a replay: every alert was raised at the same moment
            "summary": newest.display_summary,
            "group_value": newest.actor_display,
            "event_ids": [e.id for e in events],
            "event_at": newest.timestamp,
        }
    )


def stored_alerts(events: list[CanonicalEvent]) -> list[Alert]:
    """Open: one high alert (a Sigma rule's) on the newest event, two medium ones on role changes,
    one low one on three user creations."""
    ordered = sorted(events, key=lambda e: (e.timestamp, e.id), reverse=True)
    roles = [e for e in ordered if e.operation.startswith("Add member to role")]
    users = [e for e in ordered if e.operation.startswith("Add user")]
    role_rule = ("role-added", "Member added to a privileged role", "medium")
    forwarding = an_alert(
        FORWARDING_ALERT,
        "mailbox-forwarding-external",
        "Mailbox forwarding to an external address",
        "high",
        ordered[:1],
    )
    # As a Sigma rule raises it: the rule's ATT&CK tags, references, own id and level.
    forwarding = forwarding.model_copy(
        update={
            "tags": ["attack.collection", "attack.t1114.003"],
            "references": ["https://attack.mitre.org/techniques/T1114/003/"],
            "sigma_id": "478e343d-ff04-5f44-ae2f-94c12da1bc52",
            "level": "high",
        }
    )
    return [
        forwarding,
        an_alert("alert-role-1", *role_rule, roles[:1]),
        an_alert("alert-role-2", *role_rule, roles[1:2]),
        an_alert("alert-users-1", "user-burst", "Many users created", "low", users[:3]),
    ]


def stored_fixtures(data_dir: Path, fixtures: Path) -> list[CanonicalEvent]:
    """The fixture events, the alerts above, and the collector's health records (directory and
    intune fine, unified failing for two days)."""
    events = fixture_events(fixtures)

    async def fill() -> None:
        store = SqliteEventStore(data_dir / "events.sqlite3", retention_days=3650)
        await store.start()
        await store.upsert_events(events)
        await store.insert_alerts(stored_alerts(events))
        now = datetime.now(UTC)
        for source in ("directory", "intune"):
            await write_source_health(
                store,
                SourceHealth(
                    source=source, status="ok", last_run_at=now, last_success_at=now, last_count=25
                ),
            )
        await write_source_health(
            store,
            SourceHealth(
                source="unified",
                status="error",
                last_run_at=now,
                last_success_at=now - timedelta(days=2),
                last_error=UNIFIED_ERROR,
            ),
        )
        await store.stop()

    # Playwright's sync API keeps an event loop running on this thread: fill from another one.
    with ThreadPoolExecutor(max_workers=1) as worker:
        worker.submit(asyncio.run, fill()).result()
    return events


@dataclass
class WatchedPages:
    """Pages that record every sign of trouble: console errors and warnings, uncaught exceptions,
    failed requests and HTTP error responses. The `pages` fixture fails the test on any of them."""

    browser: Browser
    errors: list[str] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    # Parts of the errors a test provokes on purpose (say, a 404 it asks for).
    expected: list[str] = field(default_factory=list)

    def open(
        self, viewport: dict[str, int] | None = None, color_scheme: Any = "dark", **options: Any
    ) -> Page:
        page = self.browser.new_page(
            viewport=viewport or WIDE, color_scheme=color_scheme, **options
        )
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"console {message.type}: {message.text}")
                if message.type in ("error", "warning")
                else None
            ),
        )
        page.on(
            "requestfailed",
            lambda request: (
                None
                # Leaving a page cancels what it was still loading: that is the browser, not a fault.
                if request.failure == "net::ERR_ABORTED"
                else self.errors.append(f"request failed: {request.url} ({request.failure})")
            ),
        )
        page.on(
            "response",
            lambda response: (
                self.errors.append(f"HTTP {response.status}: {response.url}")
                if response.status >= 400
                else None
            ),
        )
        self.pages.append(page)
        return page

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(x in e for x in self.expected)]


def screenshot(page: Page, name: str, *, readme: bool = False) -> None:
    """test-artifacts/<name>.png; with AOC_README_SCREENSHOTS=1, README ones go to docs/ too."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    if readme and os.environ.get("AOC_README_SCREENSHOTS") == "1":
        README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(README_SCREENSHOTS / f"{name}.png"))


def rows(page: Page) -> Locator:
    return page.locator("#events tbody tr")
