"""Discover-grade search in the browser: the total count (exact, then "10,000+"), sorting by time
either way, field facets filtering in and out, the whole view state in the URL (shared links, the back
button), relative times with a UTC/local toggle, and keyboard navigation."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, expect

from tests.utils.browser import NARROW, WatchedPages, rows, screenshot
from tests.utils.expected import ADMIN_FIXTURE_EVENTS

OLDEST = "2026-11-10 00:00:00"
NEWEST = "2026-11-19 22:34:26"


def query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def test_the_total_is_exact_up_to_the_bound_and_then_says_so(
    pages: WatchedPages, aoc_url: str
) -> None:
    page = pages.open()
    page.goto(f"{aoc_url}/?view=events&service=Exchange")
    expect(page.locator("#status")).to_have_text("Showing 20 of 20 events · newest first")

    page.route(
        re.compile(r".*/api/events/count\?.*"),
        lambda route: route.fulfill(json={"value": 10_000, "exact": False}),
    )
    page.goto(f"{aoc_url}/?view=events")
    expect(page.locator("#status")).to_have_text("Showing 50 of 10,000+ events · newest first")


def test_events_sort_by_time_either_way_and_load_more_keeps_the_order(
    pages: WatchedPages, aoc_url: str
) -> None:
    page = pages.open()
    page.goto(f"{aoc_url}/?view=events")
    expect(rows(page).first.locator("time .abs")).to_have_text(NEWEST)

    page.click("#sort")

    expect(page.locator("#sort")).to_have_text("Oldest first")
    expect(rows(page).first.locator("time .abs")).to_have_text(OLDEST)
    assert query(page)["order"] == ["oldest"]
    page.click("#more")
    expect(rows(page)).to_have_count(100)
    times = rows(page).locator("time").evaluate_all("ts => ts.map(t => t.dateTime)")
    assert times == sorted(times)
    expect(page.locator("#status")).to_have_text(
        f"Showing 100 of {ADMIN_FIXTURE_EVENTS} events · oldest first"
    )


def facet(page: Page, field: str, value: str) -> object:
    return page.locator(f"#facets [data-field={field}] .facet-value").filter(
        has=page.locator(".facet-label", has_text=re.compile(f"^{re.escape(value)}$"))
    )


def test_facets_say_when_they_count_a_sample_and_count_more_on_request(
    pages: WatchedPages, aoc_url: str
) -> None:
    """The facet sample is in the URL: a sample smaller than the matches is said beside the
    numbers, with a control that counts up to the API's largest sample."""
    page = pages.open()
    page.goto(f"{aoc_url}/?view=events&sample=30")
    note = page.locator("#facets .facet-note")
    expect(note).to_contain_text("Counts of the newest 30 matching events")
    counted = page.locator("#facets [data-field=service] .facet-count").all_inner_texts()
    assert sum(int(count) for count in counted) == 30
    screenshot(page, "ui-events-facet-sample")
    narrow = pages.open(viewport=NARROW)  # the control whole and on the page at 800 px too
    narrow.goto(f"{aoc_url}/?view=events&sample=30")
    narrow.locator("#facets-panel summary").click()  # narrow screens start with it folded
    more = narrow.locator("#facets .facet-more")
    expect(more).to_be_visible()
    box = more.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= NARROW["width"], box
    # The note spans the panel's row instead of taking the place of a field's column.
    note_box = narrow.locator("#facets .facet-note").bounding_box()
    service_box = narrow.locator("#facets [data-field=service]").bounding_box()
    assert note_box is not None and service_box is not None
    assert note_box["y"] + note_box["height"] <= service_box["y"], (note_box, service_box)
    screenshot(narrow, "ui-events-facet-sample-800")

    note.locator(".facet-more").click()

    expect(page.locator("#facets .facet-note")).to_have_count(0)
    expect(facet(page, "service", "Entra ID").locator(".facet-count")).to_have_text("69")
    assert query(page)["sample"] == ["10000"]
    page.goto(f"{aoc_url}/?view=events&sample=0")  # out of bounds: the API's default, no 422
    expect(facet(page, "service", "Entra ID").locator(".facet-count")).to_have_text("69")


def test_facets_count_values_and_filter_them_in_and_out(pages: WatchedPages, aoc_url: str) -> None:
    page = pages.open()
    page.goto(f"{aoc_url}/?view=events")
    entra = facet(page, "service", "Entra ID")
    expect(entra.locator(".facet-count")).to_have_text("69")
    expect(facet(page, "result", "failure").locator(".facet-count")).to_have_text("17")
    expect(facet(page, "actor", "alice.admin@contoso.com").locator(".facet-count")).to_have_text(
        "46"
    )
    for field in ("service", "operation", "result", "actor", "category", "source", "tags"):
        expect(page.locator(f"#facets [data-field={field}]")).to_be_attached()

    # Filter in: only Exchange; the other facets now count Exchange's events.
    facet(page, "service", "Exchange").locator(".facet-in").click()
    expect(page.locator("#status")).to_have_text("Showing 20 of 20 events · newest first")
    assert set(rows(page).locator(".col-service").all_inner_texts()) == {"Exchange"}
    expect(facet(page, "operation", "Set-Mailbox").locator(".facet-count")).to_have_text("4")
    assert query(page)["service"] == ["Exchange"]

    # Filter out: not Set-Mailbox.
    facet(page, "operation", "Set-Mailbox").locator(".facet-out").click()
    expect(page.locator("#status")).to_have_text("Showing 16 of 16 events · newest first")
    expect(page.locator("#active-filters .filter-chip.negated")).to_contain_text(
        "not operation: Set-Mailbox"
    )
    assert query(page)["exclude_operation"] == ["Set-Mailbox"]
    assert "Set-Mailbox" not in " ".join(rows(page).locator(".summary").all_inner_texts())
    screenshot(page, "ui-events-facets")

    # A second value of one field means either of them.
    facet(page, "service", "Teams").locator(".facet-in").click()
    expect(page.locator("#status")).to_have_text("Showing 28 of 28 events · newest first")

    # Removing the chips brings everything back.
    page.locator("#active-filters .filter-chip .chip-remove").first.click()
    page.locator("#active-filters .filter-chip .chip-remove").first.click()
    page.locator("#active-filters .filter-chip .chip-remove").first.click()
    expect(page.locator("#status")).to_have_text(
        f"Showing 50 of {ADMIN_FIXTURE_EVENTS} events · newest first"
    )


def test_the_url_holds_the_view_a_link_restores_it_and_back_walks_back(
    pages: WatchedPages, aoc_url: str
) -> None:
    page = pages.open()
    page.goto(aoc_url)
    expect(page.locator("#view-overview")).to_be_visible()
    page.click("#tab-events")
    facet(page, "service", "Exchange").locator(".facet-in").click()
    expect(page.locator("#status")).to_have_text("Showing 20 of 20 events · newest first")
    page.fill("#search", "forwarding")
    page.press("#search", "Enter")
    expect(page.locator("#status")).to_have_text(re.compile(r"^Showing (\d+) of \1 events"))
    searched = rows(page).count()
    rows(page).first.click()
    expect(page.locator("#detail")).to_be_visible()
    event_id = rows(page).first.get_attribute("data-id")
    shared = page.url
    assert query(page) == {
        "view": ["events"],
        "search": ["forwarding"],
        "service": ["Exchange"],
        "event": [event_id],
    }

    # A colleague opening the link sees the same list and the same event.
    other = pages.open()
    other.goto(shared)
    expect(other.locator("#detail")).to_be_visible()
    expect(other.locator("#detail-fields")).to_contain_text(event_id or "")
    expect(rows(other)).to_have_count(searched)
    expect(other.locator("#search")).to_have_value("forwarding")

    # Back: the drawer closes, then the search goes, then the facet, then the overview returns.
    page.go_back()
    expect(page.locator("#detail")).to_be_hidden()
    page.go_back()
    expect(page.locator("#search")).to_have_value("")
    expect(page.locator("#status")).to_have_text("Showing 20 of 20 events · newest first")
    page.go_back()
    expect(page.locator("#status")).to_have_text(
        f"Showing 50 of {ADMIN_FIXTURE_EVENTS} events · newest first"
    )
    page.go_back()
    expect(page.locator("#view-overview")).to_be_visible()
    page.go_forward()
    expect(page.locator("#view-events")).to_be_visible()


def test_times_are_relative_too_and_switch_between_utc_and_local(
    pages: WatchedPages, aoc_url: str
) -> None:
    page = pages.open(timezone_id="Asia/Tokyo")  # UTC+9, no daylight saving
    page.goto(f"{aoc_url}/?view=events")
    first = rows(page).first
    expect(first.locator("time .abs")).to_have_text(NEWEST)
    expect(first.locator("time .ago")).to_have_text(re.compile(r"^\d+ d ago$"))
    expect(page.locator("#events thead")).to_contain_text("Time (UTC)")

    page.click("#tz-local")

    expect(first.locator("time .abs")).to_have_text("2026-11-20 07:34:26")
    expect(page.locator("#events thead")).to_contain_text("Time (local)")
    expect(page.locator("#tz-local")).to_have_attribute("aria-pressed", "true")
    assert query(page)["tz"] == ["local"]
    # Times typed into the filter are read in the zone shown.
    page.fill("#start", "2026-11-20 07:00")
    page.press("#start", "Enter")
    expect(page.locator("#status")).to_have_text("Showing 1 of 1 event · newest first")
    assert query(page)["start"] == ["2026-11-19T22:00:00.000Z"]


def test_the_keyboard_moves_through_events_opens_and_closes_them_and_jumps_to_search(
    pages: WatchedPages, aoc_url: str
) -> None:
    page = pages.open()
    page.goto(f"{aoc_url}/?view=events")
    expect(rows(page)).to_have_count(50)
    ids = rows(page).evaluate_all("rs => rs.map(r => r.dataset.id)")

    page.keyboard.press("j")
    expect(rows(page).nth(0)).to_have_attribute("aria-selected", "true")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    expect(rows(page).nth(1)).to_have_attribute("aria-selected", "true")
    expect(rows(page).nth(1)).to_be_focused()

    page.keyboard.press("Enter")
    expect(page.locator("#detail")).to_be_visible()
    assert query(page)["event"] == [ids[1]]
    page.keyboard.press("j")  # with the drawer open, j shows the next event
    expect(page.locator("#detail-fields")).to_contain_text(ids[2])
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    expect(rows(page).nth(2)).to_be_focused()

    page.keyboard.press("/")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.type("forwarding")
    page.keyboard.press("Enter")
    expect(page.locator("#active-filters")).to_contain_text("“forwarding”")
