"""Every view at 1400×900 and 800×900 (screenshots in test-artifacts/), nothing cut off or scrolling
sideways; WCAG AA text contrast in the dark and the light theme (which follows the system's
preference); a label on every control; a visible focus ring."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.utils.browser import NARROW, WIDE, WatchedPages, rows, screenshot

VIEWS = {
    "overview": ("/", "#freshness .freshness-item"),
    "events": ("/?view=events", "#events tbody tr"),
    "alerts": ("/?view=alerts", "#alerts tbody tr"),
    "sources": ("/?view=sources", "#sources .card"),
}

# Every visible text node's colour against the first opaque background behind it; large text
# (≥ 24 px, or ≥ 18.66 px bold) needs 3:1, the rest 4.5:1 (WCAG 2.1 AA, 1.4.3).
CONTRAST_FAILURES = """
() => {
  const parse = (c) => { const m = c.match(/[\\d.]+/g).map(Number); return { r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1 }; };
  const lum = ({ r, g, b }) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const background = (node) => {
    for (let n = node; n; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c.a >= 0.99) return c;
    }
    return parse(getComputedStyle(document.body).backgroundColor);
  };
  const failures = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    const node = text.parentElement;
    if (!text.textContent.trim() || !node || !node.checkVisibility({ opacityProperty: true, visibilityProperty: true })) continue;
    if (node.closest("svg, option, [aria-hidden=true]")) continue;
    const style = getComputedStyle(node);
    const fore = parse(style.color);
    const back = background(node);
    const [hi, lo] = [lum(fore), lum(back)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    const needed = large ? 3 : 4.5;
    const disabled = node.closest("button:disabled, input:disabled");
    if (ratio < needed && !disabled) failures.push(`${ratio.toFixed(2)} < ${needed}: "${text.textContent.trim().slice(0, 40)}" (${node.tagName.toLowerCase()}.${node.className})`);
  }
  return [...new Set(failures)];
}
"""

# Controls without an accessible name: no <label>, aria-label(ledby), text or title.
UNLABELLED = """
() => [...document.querySelectorAll("input, select, textarea, button, a[href], [role=button]")]
  .filter((n) => n.checkVisibility())
  .filter((n) => !((n.labels && n.labels.length) || n.getAttribute("aria-label") || n.getAttribute("aria-labelledby") || n.textContent.trim() || n.title))
  .map((n) => n.outerHTML.slice(0, 80))
"""


def show(page: Page, url: str, view: str) -> None:
    path, ready = VIEWS[view]
    page.goto(url + path)
    expect(page.locator(ready).first).to_be_visible()
    page.wait_for_load_state("networkidle")


def fits(page: Page, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    cut = page.evaluate(
        """() => [...document.querySelectorAll("main, section, table, .panel, .card, form")]
          .filter((n) => n.checkVisibility() && n.getBoundingClientRect().right > innerWidth + 1)
          .map((n) => n.id || n.className)"""
    )
    assert cut == []


@pytest.mark.parametrize("size", [WIDE, NARROW], ids=["1400", "800"])
def test_every_view_fits_its_window_and_is_screenshotted(
    pages: WatchedPages, aoc_url: str, size: dict[str, int]
) -> None:
    page = pages.open(viewport=size)
    width = size["width"]
    for view in VIEWS:
        show(page, aoc_url, view)
        fits(page, width)
        in_readme = width == 1400 and view in ("overview", "events", "alerts")
        screenshot(page, f"ui-{view}-{width}", readme=in_readme)
    page.goto(f"{aoc_url}/?view=events")
    rows(page).first.click()
    expect(page.locator("#detail-raw")).not_to_be_empty()
    fits(page, width)
    screenshot(page, f"ui-events-detail-{width}")


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_text_meets_wcag_aa_contrast_and_the_theme_follows_the_system(
    pages: WatchedPages, aoc_url: str, scheme: str
) -> None:
    page = pages.open(color_scheme=scheme)
    failures: dict[str, list[str]] = {}
    for view in VIEWS:
        show(page, aoc_url, view)
        if found := page.evaluate(CONTRAST_FAILURES):
            failures[view] = found
    page.goto(f"{aoc_url}/?view=events")
    rows(page).first.click()
    expect(page.locator("#detail-raw")).not_to_be_empty()
    if found := page.evaluate(CONTRAST_FAILURES):
        failures["detail"] = found
    assert failures == {}
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == ("rgb(15, 20, 25)" if scheme == "dark" else "rgb(255, 255, 255)")
    screenshot(page, f"ui-events-detail-{scheme}")


def test_every_control_has_a_label_and_the_focus_is_always_visible(
    pages: WatchedPages, aoc_url: str
) -> None:
    page = pages.open()
    for view in VIEWS:
        show(page, aoc_url, view)
        assert page.evaluate(UNLABELLED) == [], view
    page.goto(f"{aoc_url}/?view=events")
    rows(page).first.click()
    expect(page.locator("#detail-raw")).not_to_be_empty()
    assert page.evaluate(UNLABELLED) == []

    page.goto(f"{aoc_url}/?view=events")
    expect(rows(page).first).to_be_visible()
    for _ in range(6):
        page.keyboard.press("Tab")
        outline = page.evaluate(
            """() => { const s = getComputedStyle(document.activeElement);
                       return [s.outlineStyle, parseFloat(s.outlineWidth)]; }"""
        )
        assert outline[0] != "none" and outline[1] >= 2, page.evaluate(
            "document.activeElement.outerHTML.slice(0, 80)"
        )
