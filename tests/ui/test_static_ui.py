"""The UI's files agree with each other: the page loads one ES module, every module it imports
exists, every element the modules look up exists, and nothing is loaded from outside the server or
written inline (the CSP, `script-src 'self'`, would block it)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

UI = Path(__file__).resolve().parents[2] / "ui"
HTML = (UI / "index.html").read_text(encoding="utf-8")
MODULES = {path.relative_to(UI).as_posix(): path.read_text(encoding="utf-8") for path in [UI / "app.js", *sorted((UI / "modules").glob("*.js"))]}  # fmt: skip
SCRIPT = "\n".join(MODULES.values())
# One module per concern (issue 14): no catch-all script with a global state object.
CONCERNS = {
    "api",
    "state",
    "events",
    "facets",
    "detail",
    "charts",
    "alerts",
    "sources",
    "ask",
    "explain",
}


def test_the_page_starts_one_module_and_every_import_resolves() -> None:
    assert re.findall(r"<script\b[^>]*>", HTML) == ['<script type="module" src="app.js">']
    for name, source in MODULES.items():
        assert source.lstrip().startswith("//"), f"{name} should say what it is for"
        for imported in re.findall(r'from "(\.[^"]+)"', source):
            target = (UI / name).parent / imported
            assert target.resolve().is_file(), f"{name} imports {imported}"
    assert {Path(name).stem for name in MODULES} >= CONCERNS
    assert "window.state" not in SCRIPT, "the view state lives in modules/state.js (and the URL)"


def test_no_module_is_a_catch_all() -> None:
    for name, source in MODULES.items():
        assert len(source.splitlines()) < 400, f"{name} has grown past one concern"


def test_every_element_the_modules_use_exists_in_the_page() -> None:
    ids_in_page = set(re.findall(r'\bid="([\w-]+)"', HTML))
    used = set(re.findall(r'\$\("([\w-]+)"\)', SCRIPT))
    views = {f"view-{name}" for name in re.findall(r'data-view="([\w-]+)"', HTML)}
    assert used, "the modules should look elements up with $()"
    assert used - ids_in_page == set()
    assert views <= ids_in_page


def test_the_page_loads_only_its_own_files_and_has_nothing_inline() -> None:
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", HTML)
    assert "<style" not in HTML and " style=" not in HTML
    assert not re.search(r"\son[a-z]+=", HTML), "inline event handler"
    assert "innerHTML" not in SCRIPT and "insertAdjacentHTML" not in SCRIPT
    assert 'setAttribute("style"' not in SCRIPT and "eval(" not in SCRIPT


def test_msal_is_vendored_and_loaded_only_by_the_sign_in_path() -> None:
    assert (UI / "vendor" / "msal-browser.min.js").stat().st_size > 100_000
    assert SCRIPT.count('loadScript("vendor/msal-browser.min.js")') == 1
    assert "msal-browser" not in HTML


def test_modules_are_served_as_javascript_under_the_csp(aoc_url: str) -> None:
    for name in MODULES:
        answer = httpx.get(f"{aoc_url}/{name}")
        assert answer.status_code == 200, name
        assert answer.headers["content-type"].startswith(
            ("text/javascript", "application/javascript")
        )
    policy = httpx.get(aoc_url).headers["content-security-policy"]
    assert "script-src 'self';" in policy
