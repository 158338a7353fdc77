"""The UI's files agree with each other: every element the script wires up exists, and nothing is
loaded from outside the server or written inline (the CSP would block it)."""

from __future__ import annotations

import re
from pathlib import Path

UI = Path(__file__).resolve().parents[2] / "ui"
HTML = (UI / "index.html").read_text(encoding="utf-8")
SCRIPT = (UI / "app.js").read_text(encoding="utf-8")


def test_every_element_the_script_uses_exists_in_the_page() -> None:
    ids_in_page = set(re.findall(r'\bid="([\w-]+)"', HTML))
    used = set(re.findall(r'\$\("([\w-]+)"\)', SCRIPT))
    views = {f"view-{name}" for name in re.findall(r'data-view="([\w-]+)"', HTML)}
    assert used, "the script should look elements up with $()"
    assert used - ids_in_page == set()
    assert views <= ids_in_page


def test_the_page_loads_only_its_own_files_and_has_nothing_inline() -> None:
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", HTML)
    assert "<style" not in HTML and " style=" not in HTML
    assert re.findall(r"<script\b[^>]*>", HTML) == ['<script src="app.js">']
    assert not re.search(r"\son[a-z]+=", HTML), "inline event handler"
    assert "innerHTML" not in SCRIPT and "insertAdjacentHTML" not in SCRIPT


def test_msal_is_vendored_and_loaded_only_by_the_sign_in_path() -> None:
    assert (UI / "vendor" / "msal-browser.min.js").stat().st_size > 100_000
    assert SCRIPT.count('loadScript("vendor/msal-browser.min.js")') == 1
    assert "msal-browser" not in HTML
