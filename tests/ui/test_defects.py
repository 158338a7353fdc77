"""The defects a new analyst met in the UI (issue 14), each as the browser shows it, so that none
comes back: Reset, the chart's and the status line's totals, zooming to a bar, the drawer's fields,
alert times and acknowledgement, near-duplicate operations, the table at 800 px, the favicon, time
inputs in the browser's locale, the empty state and the sources' age."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Route, expect

from aoc_api.app import create_app
from aoc_common.event_store.sqlite import SqliteEventStore
from aoc_common.events import CanonicalEvent, GeoLocation, event_id_for
from aoc_common.settings import Settings
from tests.utils.browser import (
    FORWARDING_ALERT,
    NARROW,
    WatchedPages,
    rows,
    screenshot,
    stored_fixtures,
)
from tests.utils.expected import ADMIN_FIXTURE_EVENTS
from tests.utils.local_servers import serving
from tests.utils.records import signin_events


def add_events(data_dir: Path, events: list[CanonicalEvent]) -> None:
    async def fill() -> None:
        store = SqliteEventStore(data_dir / "events.sqlite3", retention_days=3650)
        await store.start()
        await store.upsert_events(events)
        await store.stop()

    with ThreadPoolExecutor(max_workers=1) as worker:
        worker.submit(asyncio.run, fill()).result()


def a_variant(event: CanonicalEvent, key: str, **changes: Any) -> CanonicalEvent:
    return event.model_copy(update={"dedupe_key": key, "id": event_id_for(key), **changes})


SIGN_IN_KEY = "directory:drawer-test"
LAST_MINUTE_KEY = "directory:last-minute-test"


@pytest.fixture
def extra_url(tmp_path: Path, fixtures_dir: Path) -> Iterator[str]:
    """The usual data plus the Entra sign-ins, an event with every client fact the drawer shows, and
    one in the last minute of an hour (22:59:30, in the 22:30 bar of the newest day)."""
    events = stored_fixtures(tmp_path, fixtures_dir)
    with_changes = next(
        e for e in events if any(t.modified_properties for t in e.targets) and e.actor.ip_address
    )
    newest = max(events, key=lambda e: e.timestamp)
    add_events(
        tmp_path,
        [
            *signin_events(fixtures_dir),
            a_variant(
                with_changes,
                SIGN_IN_KEY,
                display_summary="drawer test event",
                result="failure",
                result_detail="50126: Invalid username or password",
                actor=with_changes.actor.model_copy(
                    update={
                        "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Edge/131.0",
                        "location": GeoLocation(
                            city="Redmond", state="Washington", country_or_region="US"
                        ),
                    }
                ),
                details={"client_app": "Browser", "conditional_access": "notApplied"},
            ),
            a_variant(
                newest,
                LAST_MINUTE_KEY,
                timestamp=newest.timestamp.replace(minute=59, second=30),
                display_summary="last minute of the hour",
            ),
        ],
    )
    with serving(create_app(Settings(data_dir=tmp_path, retention_days=3650))) as url:
        yield url


def test_reset_clears_every_filter_and_shows_every_event_again(
    pages: WatchedPages, aoc_url: str
) -> None:
    page = pages.open()
    page.goto(f"{aoc_url}/?view=events&service=Exchange&search=forwarding&order=oldest")
    expect(page.locator("#search")).to_have_value("forwarding")
    expect(page.locator("#status")).to_contain_text(re.compile(r"Showing \d+ of \d+ events"))
    assert rows(page).count() < 20

    page.click("#reset-filters")

    expect(page.locator("#search")).to_have_value("")
    expect(page.locator("#active-filters .filter-chip")).to_have_count(0)
    expect(page.locator("#status")).to_have_text(
        f"Showing 50 of {ADMIN_FIXTURE_EVENTS} events · newest first"
    )
    assert page.evaluate("location.search") == "?view=events"


def test_the_chart_and_the_status_line_count_every_matching_event(
    pages: WatchedPages, aoc_url: str
) -> None:
    """The chart covered only the week up to the newest event (127 of 147) and the status line
    never gave a total."""
    page = pages.open()
    page.goto(f"{aoc_url}/?view=events")
    expect(page.locator("#histogram-title")).to_have_text(
        f"Events over time: {ADMIN_FIXTURE_EVENTS} events"
    )
    expect(page.locator("#status")).to_have_text(
        f"Showing 50 of {ADMIN_FIXTURE_EVENTS} events · newest first"
    )
    bars = page.locator("#histogram-chart rect.bar")
    counted = sum(int(n) for n in bars.evaluate_all("bars => bars.map(b => b.dataset.count)"))
    assert counted == ADMIN_FIXTURE_EVENTS


def test_zooming_to_a_bar_keeps_the_bars_last_minute(pages: WatchedPages, extra_url: str) -> None:
    """To was the bar's end minus 60 s at minute precision: 22:59:30 fell out of the 22:30 bar."""
    page = pages.open()
    page.goto(f"{extra_url}/?view=events&start=2026-11-19T00:00:00Z&end=2026-11-19T23:59:59Z")
    bar = page.locator("#histogram-chart rect.bar[data-start='2026-11-19T22:30:00Z']")
    expect(bar).to_have_attribute("data-count", "2")

    bar.click()

    expect(page.locator("#end")).to_have_value("2026-11-19 22:59:59")
    expect(page.locator("#status")).to_have_text("Showing 2 of 2 events · newest first")
    expect(rows(page).first).to_contain_text("last minute of the hour")
    assert "end=2026-11-19T22%3A59%3A59.999Z" in page.url


def test_the_drawer_shows_client_ip_user_agent_changes_and_microsofts_own_result(
    pages: WatchedPages, extra_url: str
) -> None:
    page = pages.open()
    page.goto(f"{extra_url}/?view=events&search=drawer")
    row = rows(page).first
    expect(row).to_contain_text("drawer test event")
    listed_time = row.locator("time .abs").inner_text()

    row.click()

    drawer = page.locator("#detail")
    expect(drawer).to_be_visible()
    fields = drawer.locator("#detail-client")
    expect(fields).to_contain_text("Client IP")
    expect(fields).to_contain_text("203.0.113.")
    expect(fields).to_contain_text("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Edge/131.0")
    expect(fields).to_contain_text("Redmond, Washington, US")
    expect(drawer.locator("#detail-fields")).to_contain_text(
        "failure — 50126: Invalid username or password"
    )
    expect(drawer.locator("#detail-details")).to_contain_text("client app")
    expect(drawer.locator("#detail-details")).to_contain_text("notApplied")
    change = drawer.locator("#detail-changes tbody tr").first
    expect(change.locator("del")).not_to_be_empty()
    expect(change.locator("ins")).not_to_be_empty()
    expect(change).to_contain_text("→")
    # One time format everywhere: the drawer shows the time exactly as the list does.
    expect(drawer.locator("#detail-fields time .abs")).to_have_text(listed_time)
    screenshot(page, "ui-events-detail-client")

    # A real Entra sign-in, blocked by conditional access: where from, and why, in Microsoft's words.
    page.goto(f"{extra_url}/?view=events&search=adele blocked&source=signins")
    rows(page).first.click()
    expect(drawer.locator("#detail-client")).to_contain_text("203.0.113.7")
    expect(drawer.locator("#detail-client")).to_contain_text("Amsterdam, Noord-Holland, NL")
    expect(drawer.locator("#detail-fields")).to_contain_text(
        "failure — 53003: Access has been blocked by Conditional Access policies"
    )
    expect(drawer.locator("#detail-details")).to_contain_text("blocked by conditional access")
    expect(drawer.locator("#detail-details")).to_contain_text("Office 365 Exchange Online")
    screenshot(page, "ui-events-detail-signin")


def test_tags_and_comments_wait_for_the_event_to_load_instead_of_being_dropped(
    pages: WatchedPages, aoc_url: str
) -> None:
    """A comment sent before the drawer's event had loaded used to vanish without a word (seen when
    the machine was busy); now the buttons wait for the event, and the typed text is kept."""
    page = pages.open()
    page.goto(f"{aoc_url}/?view=events")
    held: list[Route] = []
    page.route(re.compile(r".*/api/events/[0-9a-f-]{36}$"), lambda route: held.append(route))

    rows(page).first.click()
    page.wait_for_function("document.querySelector('#detail-message').textContent === 'Loading…'")
    page.fill("#comment-input", "Seen while it loaded")

    expect(page.locator("#add-comment")).to_be_disabled()
    expect(page.locator("#add-tag")).to_be_disabled()
    assert len(held) == 1
    held[0].continue_()
    expect(page.locator("#add-comment")).to_be_enabled()
    page.click("#add-comment")
    expect(page.locator("#detail-comments li .comment-text")).to_have_text(["Seen while it loaded"])


def test_alerts_show_event_time_and_an_acknowledged_alert_leaves_the_open_list_at_once(
    pages: WatchedPages, aoc_url: str
) -> None:
    page = pages.open()
    page.goto(f"{aoc_url}/?view=alerts")
    alert = page.locator(f"#alerts tbody tr[data-id='{FORWARDING_ALERT}']")
    expect(alert.locator(".event-time time .abs")).to_have_text("2026-11-19 22:34:26")
    expect(alert.locator(".created-time time .abs")).to_have_text("2026-11-20 12:00:00")
    expect(page.locator("#count-open")).to_have_text("(4)")
    expect(page.locator("#alerts-badge")).to_have_text("4")

    alert.locator("button.ack").click()

    expect(alert).to_have_count(0)
    expect(page.locator("#count-open")).to_have_text("(3)")
    expect(page.locator("#count-acknowledged")).to_have_text("(1)")
    expect(page.locator("#alerts-badge")).to_have_text("3")
    page.click("#alerts-acknowledged")
    expect(page.locator("#alerts tbody tr")).to_have_count(1)
    expect(page.locator("#alerts tbody tr .alert-status")).to_have_text("acknowledged by anonymous")


def test_operations_offer_no_near_duplicates(pages: WatchedPages, aoc_url: str) -> None:
    """ "Add user" and "Add user." were two filter values for one operation."""
    page = pages.open()
    page.goto(f"{aoc_url}/?view=events")
    labels = page.locator("#facets [data-field=operation] .facet-label")
    expect(labels.first).to_be_visible()
    names = labels.all_inner_texts()
    assert len({name.rstrip(".").casefold() for name in names}) == len(names), names
    listed = httpx.get(f"{aoc_url}/api/filter-options").json()["operations"]
    assert len({name.rstrip(".").casefold() for name in listed}) == len(listed), listed


def test_at_800_px_the_event_list_fits_and_shows_actor_result_and_tags(
    pages: WatchedPages, aoc_url: str
) -> None:
    event_id = httpx.get(f"{aoc_url}/api/events?page_size=1").json()["items"][0]["id"]
    httpx.patch(f"{aoc_url}/api/events/{event_id}/tags", json={"tags": ["vip"]})
    page = pages.open(viewport=NARROW)
    page.goto(f"{aoc_url}/?view=events")
    first = rows(page).first
    expect(first).to_be_visible()

    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
    for part in (".actor", ".result", ".chip"):
        box = first.locator(part).first.bounding_box()
        assert box is not None and box["width"] > 0, part
        assert box["x"] >= 0 and box["x"] + box["width"] <= NARROW["width"], part
    expect(first.locator(".chip").first).to_have_text("vip")
    screenshot(page, "ui-events-800")


def test_the_favicon_is_served_and_no_request_of_the_page_fails(
    pages: WatchedPages, aoc_url: str
) -> None:
    page = pages.open()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(aoc_url)
    expect(page.locator("#view-overview")).to_be_visible()
    page.wait_for_load_state("networkidle")
    icon = httpx.get(f"{aoc_url}/favicon.ico")
    assert icon.status_code == 200 and icon.content[:4] == b"\x00\x00\x01\x00"
    assert any(url.endswith("/favicon.svg") for url in requested)
    # The `pages` fixture fails the test on any 4xx/5xx answer or failed request.


def test_time_inputs_show_and_take_utc_as_written_whatever_the_browsers_locale(
    pages: WatchedPages, aoc_url: str
) -> None:
    page = pages.open(locale="de-DE", timezone_id="America/New_York")
    page.goto(f"{aoc_url}/?view=events&start=2026-11-19T00:00:00Z&end=2026-11-19T23:59:59.999Z")
    expect(page.locator("#start")).to_have_value("2026-11-19 00:00:00")
    expect(page.locator("#end")).to_have_value("2026-11-19 23:59:59")
    assert page.locator("#start").get_attribute("type") == "text"

    page.fill("#start", "2026-11-19 08:00")
    page.click("#apply")

    expect(page.locator("#status")).to_contain_text("Showing")
    assert "start=2026-11-19T08%3A00%3A00.000Z" in page.url
    page.fill("#start", "19.11.2026 08:00")
    page.click("#apply")
    expect(page.locator("#start")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#status")).to_contain_text("YYYY-MM-DD HH:MM:SS (UTC)")


def test_when_nothing_matches_an_empty_state_says_so_and_clears_the_filters(
    pages: WatchedPages, aoc_url: str
) -> None:
    page = pages.open()
    page.goto(f"{aoc_url}/?view=events&search=zzqqxxnothing")
    empty = page.locator("#empty")
    expect(empty).to_be_visible()
    expect(empty).to_contain_text("No events match")
    expect(page.locator("#events")).to_be_hidden()
    screenshot(page, "ui-events-empty")

    page.click("#empty-clear")

    expect(rows(page)).to_have_count(50)
    expect(empty).to_be_hidden()


def test_source_cards_give_the_age_of_the_last_success_and_say_when_a_source_is_stale(
    pages: WatchedPages, aoc_url: str
) -> None:
    now = datetime.now(UTC)

    def ago(hours: float) -> str:
        return datetime.fromtimestamp(now.timestamp() - hours * 3600, UTC).isoformat()

    health = {
        "sources": [
            {"source": "directory", "status": "ok", "last_run_at": ago(0.2),
             "last_success_at": ago(0.2), "last_count": 12, "warnings": []},
            {"source": "intune", "status": "ok", "last_run_at": ago(5),
             "last_success_at": ago(5), "last_count": 3, "warnings": []},
            {"source": "unified", "status": "error", "last_run_at": ago(0.2),
             "last_success_at": ago(48), "last_error": "HTTP 503", "last_count": 0,
             "warnings": []},
            {"source": "signins", "status": "replayed", "last_run_at": ago(3),
             "last_success_at": ago(3), "last_count": 31,
             "warnings": ["replayed from samples (sample_data); the live collector has not run"]},
        ]
    }  # fmt: skip

    def features(route: Route) -> None:
        answer = route.fetch().json()
        route.fulfill(json={**answer, "periodic_fetch": True, "fetch_interval_minutes": 60})

    page = pages.open()
    page.route(re.compile(r".*/api/source-health$"), lambda route: route.fulfill(json=health))
    page.route(re.compile(r".*/api/config/features$"), features)
    page.goto(f"{aoc_url}/?view=sources")

    directory = page.locator("#sources .card[data-source=directory]")
    intune = page.locator("#sources .card[data-source=intune]")
    unified = page.locator("#sources .card[data-source=unified]")
    expect(directory.locator(".freshness-text")).to_have_text("last success 12 min ago")
    expect(intune.locator(".pill.stale")).to_have_text("stale")
    expect(intune.locator(".freshness-text")).to_contain_text("last success 5 h ago")
    expect(intune.locator(".freshness-text")).to_contain_text("expected every 60 minutes")
    expect(unified.locator(".freshness-text")).to_have_text("failing; last success 2 d ago")
    # The demo's replayed samples are not a collector that fell behind.
    signins = page.locator("#sources .card[data-source=signins]")
    expect(signins.locator(".freshness-text")).to_have_text("replayed from samples 3 h ago")
    expect(directory).to_contain_text("Newest event")
    expect(page.locator("#sources-status")).to_have_text("2 sources need attention.")
    screenshot(page, "ui-sources-stale")
