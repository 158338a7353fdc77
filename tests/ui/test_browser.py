"""The web UI in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright), against
the real API on a free loopback port with the fixture events in an embedded store.

Screenshots land in test-artifacts/ (gitignored) so that a person can look at what the test saw.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from jose import jwt
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from aoc_api.app import create_app
from aoc_api.auth import JwksCache, TokenVerifier
from aoc_common.event_store.sqlite import SqliteEventStore
from aoc_common.rules import Alert
from aoc_common.settings import Settings
from aoc_common.source_health import SourceHealth, write_source_health
from tests.utils.fake_llm import fake_llm, function_call, tool_call
from tests.utils.identity import CLIENT, TENANT, FakeIdentityProvider, a_signing_key
from tests.utils.local_servers import serving
from tests.utils.records import fixture_events

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
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


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed (.ci/run installs it)", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


FORWARDING_ALERT = "alert-forwarding-1"
UNIFIED_ERROR = (
    "management-api: GET https://manage.office.com/api/v1.0/x failed after 5 attempts: HTTP 503"
)


def stored_fixtures(data_dir: Path, fixtures: Path) -> None:
    """The fixture events, one open alert on the newest of them, and the collector's health records."""

    async def fill() -> None:
        store = SqliteEventStore(data_dir / "events.sqlite3", retention_days=3650)
        await store.start()
        events = fixture_events(fixtures)
        await store.upsert_events(events)
        newest = max(events, key=lambda e: (e.timestamp, e.id))
        alert = Alert(
            id=FORWARDING_ALERT,
            rule_id="mailbox-forwarding-external",
            rule_name="Mailbox forwarding to an external address",
            severity="high",
            status="open",
            created_at=datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
            summary=newest.display_summary,
            group_value=newest.actor_display,
            event_ids=[newest.id],
        )
        await store.insert_alerts([alert])
        now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
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
                source="unified", status="error", last_run_at=now, last_error=UNIFIED_ERROR
            ),
        )
        await store.stop()

    # Playwright's sync API keeps an event loop running on this thread: fill from another one.
    with ThreadPoolExecutor(max_workers=1) as worker:
        worker.submit(asyncio.run, fill()).result()


@pytest.fixture
def aoc_url(tmp_path: Path, fixtures_dir: Path) -> Iterator[str]:
    stored_fixtures(tmp_path, fixtures_dir)
    app = create_app(Settings(data_dir=tmp_path, retention_days=3650))
    with serving(app) as url:
        yield url


def watched_page(browser: Browser, errors: list[str]) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"request failed: {request.url}"))
    return page


def rows(page: Page) -> Any:
    return page.locator("#events tbody tr")


def test_an_analyst_filters_pages_opens_a_raw_event_and_tags_it(
    browser: Browser, aoc_url: str
) -> None:
    errors: list[str] = []
    page = watched_page(browser, errors)
    external: list[str] = []
    page.on(
        "request",
        lambda request: None if request.url.startswith(aoc_url) else external.append(request.url),
    )
    page.goto(aoc_url)

    # Load: the newest 50 events, dropdowns from filter-options, the histogram, health.
    expect(rows(page)).to_have_count(50)
    expect(page.locator("#status")).to_contain_text("50 events shown (more available)")
    expect(page.locator("#service option")).to_have_count(6)  # "All services" + 5
    expect(page.locator("#histogram-chart rect.bar").first).to_be_attached()
    expect(page.locator("#histogram-title")).to_contain_text("Events over time")
    expect(page.locator("#health")).to_have_text("ok")
    expect(page.locator("#ask")).to_be_hidden()  # AI_FEATURES_ENABLED is off
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-events.png"))

    # Page: "Load more" follows next_cursor.
    page.click("#more")
    expect(rows(page)).to_have_count(100)

    # Filter: a dropdown value applies at once; free-text search narrows further.
    page.select_option("#service", "Exchange")
    expect(page.locator("#status")).to_contain_text("20 events shown")
    services = page.locator("#events tbody tr td:nth-child(2)").all_inner_texts()
    assert set(services) == {"Exchange"}
    page.fill("#search", "forwarding")
    page.click("#apply")
    # Not merely "not 20 events": "Loading…" is that too, with the old rows still in the table.
    expect(page.locator("#status")).to_have_text(re.compile(r"^(?!20 )\d+ events? shown"))
    expect(rows(page).first).to_be_visible()
    searched = rows(page).count()
    assert 0 < searched < 20

    # Open a raw event: the drawer shows the pretty JSON Microsoft sent.
    rows(page).first.click()
    drawer = page.locator("#detail")
    expect(drawer).to_be_visible()
    raw_text = page.locator("#detail-raw").inner_text()
    raw = json.loads(raw_text)
    assert raw["Workload"] == "Exchange"
    assert "\n  " in raw_text  # indented, not one line

    # Tag it: the chip appears, the row and the API agree, and the tag becomes a filter option.
    page.fill("#tag-input", "triage")
    page.click("#add-tag")
    expect(page.locator("#detail-tags .chip")).to_have_text(["triage×"])
    expect(page.locator("#detail-message")).to_have_text("Tags saved.")
    expect(rows(page).first.locator(".chip")).to_have_text(["triage"])
    expect(page.locator("#tag option[value=triage]")).to_be_attached()
    event_id = rows(page).first.get_attribute("data-id")
    stored = httpx.get(f"{aoc_url}/api/events/{event_id}").json()
    assert stored["tags"] == ["triage"]

    # Comment on it.
    page.fill("#comment-input", "Forwarding to an outside address: escalated")
    page.click("#add-comment")
    expect(page.locator("#detail-comments li .comment-text")).to_have_text(
        ["Forwarding to an outside address: escalated"]
    )

    page.screenshot(path=str(ARTIFACTS / "ui-events-detail.png"))

    # The alerts view lists the open alert; acknowledging it records who did it.
    page.click("#close-detail")
    page.click("#tab-alerts")
    alert_row = page.locator(f"#alerts tbody tr[data-id='{FORWARDING_ALERT}']")
    expect(alert_row).to_contain_text("Mailbox forwarding to an external address")
    expect(page.locator("#alerts-status")).to_have_text("1 alert shown")
    alert_row.locator("button.ack").click()
    expect(alert_row).to_contain_text("acknowledged by anonymous")
    stored_alert = httpx.get(f"{aoc_url}/api/alerts?status=acknowledged").json()["items"]
    assert [a["id"] for a in stored_alert] == [FORWARDING_ALERT]
    page.screenshot(path=str(ARTIFACTS / "ui-alerts.png"))

    # The source-health panel shows each source, with the failing one's error text.
    page.click("#tab-sources")
    expect(page.locator("#sources .card h3")).to_have_text(
        ["directory", "intune", "signins", "unified"]
    )
    expect(page.locator("#sources .card.status-error .last-error")).to_have_text(UNIFIED_ERROR)
    page.screenshot(path=str(ARTIFACTS / "ui-sources.png"))
    page.click("#tab-events")
    expect(rows(page).first).to_be_visible()

    assert errors == []
    assert external == []  # no CDN, no outside call of any kind
    page.close()


def test_the_alerts_view_and_source_panel_show_what_the_apis_return(
    browser: Browser, aoc_url: str
) -> None:
    """Against the agreed shapes (contracts §2, §3), answered here by the browser's router."""
    alert = {
        "id": "alert-1",
        "rule_id": "rule-1",
        "rule_name": "Mail forwarding to an outside domain",
        "severity": "high",
        "status": "open",
        "created_at": "2026-11-14T10:00:00.000Z",
        "summary": "alice.admin@contoso.com set forwarding on 2 mailboxes",
        "group_value": "alice.admin@contoso.com",
        "event_ids": ["e1", "e2"],
        "acknowledged_by": None,
        "acknowledged_at": None,
        "tags": ["attack.collection", "attack.t1114.003"],
        "references": ["https://attack.mitre.org/techniques/T1114/003/"],
        "sigma_id": "478e343d-ff04-5f44-ae2f-94c12da1bc52",
    }
    acknowledged: list[str] = []

    def alerts(route: Route) -> None:
        if route.request.method == "POST":
            acknowledged.append(route.request.url)
            route.fulfill(json={**alert, "status": "acknowledged", "acknowledged_by": "anonymous"})
        else:
            route.fulfill(json={"items": [alert], "next_cursor": None})

    errors: list[str] = []
    page = watched_page(browser, errors)
    page.route(re.compile(r".*/api/alerts.*"), alerts)
    page.route(
        re.compile(r".*/api/source-health$"),
        lambda route: route.fulfill(
            json={
                "sources": [
                    {
                        "source": "directory",
                        "status": "ok",
                        "last_run_at": "2026-11-25T11:00:00Z",
                        "last_success_at": "2026-11-25T11:00:00Z",
                        "last_error": None,
                        "last_count": 58,
                        "watermark": "2026-11-25T10:59:00Z",
                        "warnings": [],
                    },
                    {
                        "source": "unified",
                        "status": "error",
                        "last_run_at": "2026-11-25T11:00:00Z",
                        "last_success_at": None,
                        "last_error": "management-api: HTTP 403 (subscription not started)",
                        "last_count": 0,
                        "watermark": None,
                        "warnings": ["Audit.General subscription is disabled"],
                    },
                ]
            }
        ),
    )
    page.goto(aoc_url)
    expect(page.locator("#alerts-badge")).to_have_text("1")
    page.click("#tab-alerts")
    expect(page.locator("#alerts tbody tr")).to_have_count(1)
    expect(page.locator("#alerts tbody tr td.severity")).to_have_text("high")
    # A Sigma rule's alert: its mark, its ATT&CK tags (techniques link to MITRE) and references.
    expect(page.locator("#alerts tbody tr .sigma-mark")).to_have_text("Sigma")
    technique = page.locator("#alerts tbody tr .alert-tags a.chip")
    expect(technique).to_have_text("attack.t1114.003")
    expect(technique).to_have_attribute("href", "https://attack.mitre.org/techniques/T1114/003/")
    expect(page.locator("#alerts tbody tr .alert-references a")).to_have_count(1)
    page.click("#alerts tbody tr button.ack")
    expect(page.locator("#alerts tbody tr td:nth-child(6)")).to_have_text(
        "acknowledged by anonymous"
    )
    assert acknowledged and acknowledged[0].endswith("/api/alerts/alert-1/acknowledge")
    page.click("#tab-sources")
    expect(page.locator("#sources .card")).to_have_count(2)
    expect(page.locator("#sources .card.status-error .last-error")).to_contain_text("HTTP 403")
    page.screenshot(path=str(ARTIFACTS / "ui-sources.png"))
    assert errors == []
    page.close()


def test_with_sign_in_on_the_ui_loads_msal_and_signs_in_with_the_code_flow_and_pkce(
    browser: Browser, tmp_path: Path
) -> None:
    authority_host = "https://login.contoso-idp.test"
    settings = Settings(
        data_dir=tmp_path,
        auth_enabled=True,
        auth_tenant_id=TENANT,
        auth_client_id=CLIENT,
        authority_host=authority_host,
    )
    authorize: list[str] = []

    def identity_provider(route: Route) -> None:
        url = route.request.url
        if "openid-configuration" in url:
            route.fulfill(
                json={
                    "issuer": f"{authority_host}/{TENANT}/v2.0",
                    "authorization_endpoint": f"{authority_host}/{TENANT}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{authority_host}/{TENANT}/oauth2/v2.0/token",
                    "end_session_endpoint": f"{authority_host}/{TENANT}/oauth2/v2.0/logout",
                    "jwks_uri": f"{authority_host}/{TENANT}/discovery/v2.0/keys",
                }
            )
        elif "/oauth2/v2.0/authorize" in url:
            authorize.append(url)
            route.fulfill(
                body="<html><body>identity provider</body></html>", content_type="text/html"
            )
        else:
            route.fulfill(status=404, body="")

    errors: list[str] = []
    with serving(create_app(settings)) as url:
        page = watched_page(browser, errors)
        page.route(f"{authority_host}/**", identity_provider)
        api_calls: list[str] = []
        page.on("request", lambda r: api_calls.append(r.url) if "/api/events" in r.url else None)
        page.goto(url)
        expect(page.locator("#signed-out")).to_be_visible()
        expect(page.locator("#view-events")).to_be_hidden()
        assert page.evaluate("typeof msal") == "object"
        assert api_calls == []  # nothing is asked of the API before sign-in
        page.click("#sign-in-main")
        page.wait_for_url(re.compile(r".*/oauth2/v2\.0/authorize.*"))
        page.close()
    query = parse_qs(urlsplit(authorize[0]).query)
    assert query["client_id"] == [CLIENT]
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) >= 43
    assert query["redirect_uri"] == [url + "/"]
    assert f"api://{CLIENT}/.default" in query["scope"][0].split(" ")
    assert errors == []


def test_the_openapi_page_renders_from_vendored_files_under_the_csp(
    browser: Browser, aoc_url: str
) -> None:
    errors: list[str] = []
    page = watched_page(browser, errors)
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    external: list[str] = []
    page.on(
        "request",
        lambda request: None if request.url.startswith(aoc_url) else external.append(request.url),
    )
    page.goto(f"{aoc_url}/docs")
    expect(page.locator(".opblock-summary-path[data-path='/api/events']")).to_be_attached()
    expect(
        page.locator(".opblock-summary-path[data-path='/api/events/{event_id}/tags']")
    ).to_be_attached()
    page.screenshot(path=str(ARTIFACTS / "api-docs.png"))
    assert errors == []
    assert external == []
    page.close()


def test_a_signed_in_analyst_reads_and_comments_with_a_verified_token(
    browser: Browser, tmp_path: Path, fixtures_dir: Path
) -> None:
    """The whole sign-in: MSAL.js redirects to the identity provider (answered by the browser's
    router), redeems the code with its PKCE verifier, and calls the API with the access token,
    which the API verifies against the key set of a fake provider on 127.0.0.1."""
    authority_host = "https://login.contoso-idp.test"
    issuer = f"{authority_host}/{TENANT}/v2.0"
    key = a_signing_key("ui-key")
    provider = FakeIdentityProvider(keys=[key])
    stored_fixtures(tmp_path, fixtures_dir)
    settings = Settings(
        data_dir=tmp_path,
        retention_days=3650,
        auth_enabled=True,
        auth_tenant_id=TENANT,
        auth_client_id=CLIENT,
        authority_host=authority_host,
    )
    oid = "0a0a0a0a-0000-0000-0000-0000000000aa"
    client_info = base64.urlsafe_b64encode(
        json.dumps({"uid": oid, "utid": TENANT}).encode()
    ).decode()
    redeemed: list[dict[str, list[str]]] = []
    nonce: list[str] = []

    def token(claims: dict[str, Any]) -> str:
        now = int(time.time())
        payload = {"iss": issuer, "tid": TENANT, "oid": oid, "sub": oid, "iat": now, "nbf": now}
        payload.update(exp=now + 3600, **claims)
        return jwt.encode(payload, key.private_pem.decode(), "RS256", headers={"kid": key.kid})

    def identity_provider(route: Route) -> None:
        request = route.request
        cors = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "*"}
        if request.method == "OPTIONS":
            route.fulfill(status=204, headers=cors)
        elif "openid-configuration" in request.url:
            route.fulfill(
                headers=cors,
                json={
                    "issuer": issuer,
                    "authorization_endpoint": f"{authority_host}/{TENANT}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{authority_host}/{TENANT}/oauth2/v2.0/token",
                    "end_session_endpoint": f"{authority_host}/{TENANT}/oauth2/v2.0/logout",
                    "jwks_uri": f"{authority_host}/{TENANT}/discovery/v2.0/keys",
                },
            )
        elif "/oauth2/v2.0/authorize" in request.url:
            query = parse_qs(urlsplit(request.url).query)
            nonce.append(query["nonce"][0])
            back = (
                f"{query['redirect_uri'][0]}#code=the-code&state={query['state'][0]}"
                f"&client_info={client_info}"
            )
            route.fulfill(status=302, headers={"Location": back})
        elif "/oauth2/v2.0/token" in request.url:
            redeemed.append(parse_qs(request.post_data or ""))
            route.fulfill(
                headers=cors,
                json={
                    "token_type": "Bearer",
                    "scope": f"api://{CLIENT}/.default",
                    "expires_in": 3600,
                    "ext_expires_in": 3600,
                    "access_token": token(
                        {
                            "aud": CLIENT,
                            "preferred_username": "dana@contoso.com",
                            "roles": ["AOC.Writer"],
                        }
                    ),
                    "id_token": token(
                        {
                            "aud": CLIENT,
                            "preferred_username": "dana@contoso.com",
                            "name": "Dana",
                            "nonce": nonce[-1],
                        }
                    ),
                    "client_info": client_info,
                },
            )
        else:
            route.fulfill(status=404, body="")

    errors: list[str] = []
    with serving(provider.app()) as provider_url:
        app = create_app(settings)
        app.state.token_verifier = TokenVerifier(
            settings, JwksCache(f"{provider_url}/{TENANT}/discovery/v2.0/keys")
        )
        with serving(app) as url:
            page = watched_page(browser, errors)
            page.route(f"{authority_host}/**", identity_provider)
            page.goto(url)
            page.click("#sign-in-main")
            expect(rows(page)).to_have_count(50)
            expect(page.locator("#user")).to_have_text("dana@contoso.com")
            expect(page.locator("#sign-out")).to_be_visible()
            rows(page).first.click()
            page.fill("#comment-input", "Seen, signed in")
            page.click("#add-comment")
            expect(page.locator("#detail-comments li .muted")).to_contain_text(["dana@contoso.com"])
            page.screenshot(path=str(ARTIFACTS / "ui-signed-in.png"))
            page.close()
            anonymous = httpx.get(f"{url}/api/events")
    assert anonymous.status_code == 401
    assert redeemed[0]["grant_type"] == ["authorization_code"]
    assert redeemed[0]["code"] == ["the-code"]
    assert len(redeemed[0]["code_verifier"][0]) >= 43
    assert provider.fetches == 1
    assert errors == []


def test_with_ai_on_an_analyst_asks_a_question_and_sees_the_query_and_its_events(
    browser: Browser, tmp_path: Path, fixtures_dir: Path
) -> None:
    stored_fixtures(tmp_path, fixtures_dir)
    for llm in fake_llm():
        llm.reset(
            tool_call(
                service="Entra ID",
                operation="Add user",
                start="2026-11-01T00:00:00Z",
                end="2026-11-20T00:00:00Z",
            ),
            # The narrative cites an event that was not found: it never reaches the page.
            function_call(
                "answer_question",
                {
                    "answer": "AAD Connect added 17 users in November. [event:ghost]",
                    "cited_event_ids": ["ghost"],
                },
            ),
        )
        settings = Settings(
            data_dir=tmp_path,
            retention_days=3650,
            ai_features_enabled=True,
            llm_api_key="sk-test-key",
            llm_base_url=f"{llm.url}/v1",
        )
        with serving(create_app(settings)) as url:
            errors: list[str] = []
            page = watched_page(browser, errors)
            page.goto(url)
            expect(rows(page)).to_have_count(50)

            page.fill("#question", "Who added users in Entra ID in November?")
            page.click("#ask-submit")

            expect(page.locator("#ask-summary")).to_have_text(
                "AAD Connect added 17 users in November."
            )
            expect(page.locator("#ask-query")).to_contain_text("service=Entra ID")
            expect(page.locator("#ask-query")).to_contain_text("operation=Add user")
            expect(rows(page)).to_have_count(17)
            services = page.locator("#events tbody tr td:nth-child(2)").all_inner_texts()
            assert set(services) == {"Entra ID"}
            # The filters now show what was searched, so Apply re-runs the same query.
            expect(page.locator("#service")).to_have_value("Entra ID")
            expect(page.locator("#operation")).to_have_value("Add user")
            expect(page.locator("#start")).to_have_value(re.compile(r"^2026-11-01T00:00"))
            expect(page.locator("#end")).to_have_value(re.compile(r"^2026-11-20T00:00"))
            page.click("#apply")
            expect(page.locator("#status")).to_have_text("17 events shown")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "ui-ask.png"))
            asked, narrated = (r["messages"][-1]["content"] for r in llm.requests)
            assert asked == "Who added users in Entra ID in November?"
            assert narrated.startswith("Question: Who added users in Entra ID in November?")
            assert errors == []
            page.close()
