"""The overview (the landing page, every chart clicking through to the filtered events) and the
alerts view (tabs with counts, grouped by rule, bulk acknowledgement, an alert's events)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, expect

from aoc_common.sources import SOURCES
from tests.utils.browser import FORWARDING_ALERT, WatchedPages, rows, screenshot
from tests.utils.expected import ADMIN_FIXTURE_EVENTS


def query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def test_the_overview_is_the_landing_page_and_every_chart_clicks_through_to_its_events(
    pages: WatchedPages, aoc_url: str
) -> None:
    page = pages.open()
    page.goto(aoc_url)
    expect(page.locator("#tab-overview")).to_have_attribute("aria-current", "page")
    expect(page.locator("#overview-window")).to_contain_text(f"{ADMIN_FIXTURE_EVENTS} events")
    segments = page.locator("#chart-services rect.bar")
    expect(segments.first).to_be_visible()
    services = set(segments.evaluate_all("rs => rs.map(r => r.dataset.series)"))
    assert services == {"Entra ID", "Intune", "Exchange", "SharePoint", "Teams"}
    counted = sum(int(n) for n in segments.evaluate_all("rs => rs.map(r => r.dataset.count)"))
    assert counted == ADMIN_FIXTURE_EVENTS
    expect(page.locator("#legend-services .legend-item")).to_have_count(5)
    expect(page.locator("#failures-total")).to_have_text("(17 failures)")
    expect(page.locator("#top-actors .bar-label").first).to_have_text("alice.admin@contoso.com")
    expect(page.locator("#top-actors .bar-count").first).to_have_text("46")
    expect(page.locator("#top-operations .bar-label").first).to_have_text("Add user")
    expect(page.locator("#alerts-by-severity .bar-label")).to_have_text(["high", "medium", "low"])
    expect(page.locator("#freshness .freshness-item")).to_have_count(len(SOURCES))
    screenshot(page, "ui-overview")

    # A stacked segment: that service in that interval.
    exchange = page.locator("#chart-services rect.bar[data-series=Exchange]").first
    start, count = exchange.get_attribute("data-start"), exchange.get_attribute("data-count")
    exchange.click()
    expect(page.locator("#view-events")).to_be_visible()
    expect(page.locator("#status")).to_have_text(re.compile(rf"^Showing {count} of {count} event"))
    assert query(page)["service"] == ["Exchange"]
    assert query(page)["start"][0].startswith((start or "")[:16])
    page.go_back()

    # A failure bar: the failures of that interval.
    failure = page.locator("#chart-failures rect.bar").first
    count = failure.get_attribute("data-count")
    failure.click()
    expect(page.locator("#status")).to_have_text(re.compile(rf"^Showing {count} of {count} event"))
    assert set(rows(page).locator(".col-result").all_inner_texts()) == {"failure"}
    page.go_back()

    # Top actor, top operation: their events.
    page.locator("#top-actors .bar-item").first.click()
    expect(page.locator("#status")).to_have_text("Showing 46 of 46 events · newest first")
    assert query(page)["actor_display"] == ["alice.admin@contoso.com"]
    page.go_back()
    page.locator("#top-operations .bar-item").first.click()
    assert set(rows(page).locator(".summary-text").all_inner_texts())
    expect(page.locator("#active-filters")).to_contain_text("operation: Add user")
    page.go_back()

    # Alerts by severity: the open alerts of that severity.
    page.locator("#alerts-by-severity .bar-item").first.click()
    expect(page.locator("#view-alerts")).to_be_visible()
    expect(page.locator("#alerts tbody tr")).to_have_count(1)
    expect(page.locator("#alert-severity")).to_have_value("high")
    page.go_back()

    # A source's freshness: that source's events.
    page.locator("#freshness .freshness-item[data-source=unified]").click()
    expect(page.locator("#active-filters")).to_contain_text("source: unified")
    assert set(rows(page).locator(".col-service").all_inner_texts()) <= {
        "Exchange",
        "SharePoint",
        "Teams",
        "Entra ID",
    }


def test_the_overview_range_narrows_every_chart(pages: WatchedPages, aoc_url: str) -> None:
    page = pages.open()
    page.goto(f"{aoc_url}/?period=24h")
    expect(page.locator("#overview-range")).to_have_value("24h")
    expect(page.locator("#overview-status")).to_have_text(
        re.compile("No events in this time range")
    )
    page.select_option("#overview-range", "all")
    expect(page.locator("#overview-window")).to_contain_text(f"{ADMIN_FIXTURE_EVENTS} events")
    assert "period" not in query(page)


def test_alerts_are_grouped_by_rule_acknowledged_in_bulk_and_lead_to_their_events(
    pages: WatchedPages, aoc_url: str
) -> None:
    page = pages.open()
    page.goto(f"{aoc_url}/?view=alerts")
    rules = page.locator("#alert-rules .rule-item")
    expect(rules).to_have_count(4)  # all rules, then each rule with its open count
    expect(rules.nth(1)).to_contain_text("Member added to a privileged role")
    expect(rules.nth(1).locator(".rule-count")).to_have_text("2")
    screenshot(page, "ui-alerts")

    rules.nth(1).click()
    expect(page.locator("#alerts tbody tr")).to_have_count(2)
    assert query(page)["rule"] == ["role-added"]
    page.check("#select-all-alerts")
    expect(page.locator("#ack-selected")).to_have_text("Acknowledge selected (2)")
    page.click("#ack-selected")
    expect(page.locator("#alerts tbody tr")).to_have_count(0)
    expect(page.locator("#alerts-status")).to_contain_text("2 alerts acknowledged.")
    expect(page.locator("#count-open")).to_have_text("(2)")
    expect(page.locator("#count-acknowledged")).to_have_text("(2)")
    expect(page.locator("#alerts-badge")).to_have_text("2")

    page.click("#alerts-all")
    page.locator("#alert-rules .rule-all").click()
    expect(page.locator("#alerts tbody tr")).to_have_count(4)
    users = page.locator("#alerts tbody tr[data-id=alert-users-1]")
    expect(users.locator(".events-link")).to_have_text("3 events →")
    users.locator(".events-link").click()
    expect(page.locator("#alert-scope")).to_contain_text("Many users created")
    expect(rows(page)).to_have_count(3)
    expect(page.locator("#status")).to_have_text("Showing 3 of 3 events · newest first")
    assert query(page)["alert"] == ["alert-users-1"]
    page.click("#alert-scope-clear")
    expect(rows(page)).to_have_count(50)

    # A Sigma rule's alert: its mark, its ATT&CK tags (techniques link to MITRE) and references.
    page.goto(f"{aoc_url}/?view=alerts")
    sigma = page.locator(f"#alerts tbody tr[data-id='{FORWARDING_ALERT}']")
    expect(sigma.locator(".sigma-mark")).to_have_text("Sigma")
    technique = sigma.locator(".alert-tags a.chip")
    expect(technique).to_have_text("attack.t1114.003")
    expect(technique).to_have_attribute("href", "https://attack.mitre.org/techniques/T1114/003/")
    expect(sigma.locator(".alert-references a")).to_have_count(1)
