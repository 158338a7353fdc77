"""The web UI in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright), against
the real API on a free loopback port with the fixture events in an embedded store: an analyst's
session end to end, sign-in with Entra ID (MSAL.js, code flow with PKCE), the OpenAPI page, and
questions in plain language.

Screenshots land in test-artifacts/ (gitignored) so that a person can look at what the test saw.
"""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from jose import jwt
from playwright.sync_api import Route, expect

from aoc_api.app import create_app
from aoc_api.auth import JwksCache, TokenVerifier
from aoc_common.settings import Settings
from tests.utils.browser import (
    FORWARDING_ALERT,
    UNIFIED_ERROR,
    WatchedPages,
    rows,
    screenshot,
    stored_fixtures,
)
from tests.utils.expected import ADMIN_FIXTURE_EVENTS
from tests.utils.fake_llm import fake_llm, function_call, tool_call
from tests.utils.identity import CLIENT, TENANT, FakeIdentityProvider, a_signing_key
from tests.utils.local_servers import serving
from tests.utils.records import fixture_events


def test_an_analyst_filters_pages_opens_a_raw_event_and_tags_it(
    pages: WatchedPages, aoc_url: str
) -> None:
    page = pages.open()
    external: list[str] = []
    page.on(
        "request",
        lambda request: None if request.url.startswith(aoc_url) else external.append(request.url),
    )
    page.goto(aoc_url)
    expect(page.locator("#view-overview")).to_be_visible()
    expect(page.locator("#health")).to_have_text("ok")
    expect(page.locator("#ask")).to_be_hidden()  # AI_FEATURES_ENABLED is off
    page.click("#tab-events")

    # Load: the newest 50 events of 149, the facets, the histogram.
    expect(rows(page)).to_have_count(50)
    expect(page.locator("#status")).to_have_text(
        f"Showing 50 of {ADMIN_FIXTURE_EVENTS} events · newest first"
    )
    expect(page.locator("#facets [data-field=service] .facet-value")).to_have_count(5)
    expect(page.locator("#histogram-chart rect.bar").first).to_be_attached()
    screenshot(page, "ui-events")

    # Page: "Load more" follows next_cursor.
    page.click("#more")
    expect(rows(page)).to_have_count(100)

    # Filter: a facet value applies at once; free-text search narrows further.
    page.locator("#facets [data-field=service] .facet-value", has_text="Exchange").locator(
        ".facet-in"
    ).click()
    expect(page.locator("#status")).to_have_text("Showing 20 of 20 events · newest first")
    assert set(rows(page).locator(".col-service").all_inner_texts()) == {"Exchange"}
    page.fill("#search", "forwarding")
    page.click("#apply")
    expect(page.locator("#status")).to_have_text(re.compile(r"^Showing (?!20 )(\d+) of \1 event"))
    searched = rows(page).count()
    assert 0 < searched < 20

    # Open a raw event: the drawer shows the pretty JSON Microsoft sent.
    rows(page).first.click()
    drawer = page.locator("#detail")
    expect(drawer).to_be_visible()
    expect(page.locator("#detail-raw")).not_to_be_empty()
    expect(page.locator("#explain-event")).to_have_count(0)  # AI is off
    raw_text = page.locator("#detail-raw").inner_text()
    raw = json.loads(raw_text)
    assert raw["Workload"] == "Exchange"
    assert "\n  " in raw_text  # indented, not one line

    # Tag it: the chip appears, the row and the API agree, and the tag becomes a facet value.
    page.fill("#tag-input", "triage")
    page.click("#add-tag")
    expect(page.locator("#detail-tags .chip")).to_have_text(["triage×"])
    expect(page.locator("#detail-message")).to_have_text("Tags saved.")
    expect(rows(page).first.locator(".col-tags .chip")).to_have_text(["triage"])
    expect(page.locator("#facets [data-field=tags] .facet-label")).to_have_text(["triage"])
    event_id = rows(page).first.get_attribute("data-id")
    stored = httpx.get(f"{aoc_url}/api/events/{event_id}").json()
    assert stored["tags"] == ["triage"]

    # Comment on it.
    page.fill("#comment-input", "Forwarding to an outside address: escalated")
    page.click("#add-comment")
    expect(page.locator("#detail-comments li .comment-text")).to_have_text(
        ["Forwarding to an outside address: escalated"]
    )
    screenshot(page, "ui-events-detail")

    # The alerts view lists the open alert; acknowledging it records who did it.
    page.click("#close-detail")
    page.click("#tab-alerts")
    alert_row = page.locator(f"#alerts tbody tr[data-id='{FORWARDING_ALERT}']")
    expect(alert_row).to_contain_text("Mailbox forwarding to an external address")
    expect(page.locator("#alerts-status")).to_have_text("4 open alerts shown")
    alert_row.locator("button.ack").click()
    expect(alert_row).to_have_count(0)
    stored_alert = httpx.get(f"{aoc_url}/api/alerts?status=acknowledged").json()["items"]
    assert [(a["id"], a["acknowledged_by"]) for a in stored_alert] == [
        (FORWARDING_ALERT, "anonymous")
    ]

    # The source-health panel shows each source, with the failing one's error text.
    page.click("#tab-sources")
    expect(page.locator("#sources .card h3")).to_have_text(
        ["directory", "intune", "signins", "unified"]
    )
    expect(page.locator("#sources .card.status-error .last-error")).to_have_text(UNIFIED_ERROR)
    screenshot(page, "ui-sources")
    page.click("#tab-events")
    expect(rows(page).first).to_be_visible()

    assert external == []  # no CDN, no outside call of any kind


def test_with_sign_in_on_the_ui_loads_msal_and_signs_in_with_the_code_flow_and_pkce(
    pages: WatchedPages, tmp_path: Path
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

    pages.expected.append(f"{authority_host}/")  # the fake provider's 404s for what it lacks
    with serving(create_app(settings)) as url:
        page = pages.open()
        page.route(f"{authority_host}/**", identity_provider)
        api_calls: list[str] = []
        page.on("request", lambda r: api_calls.append(r.url) if "/api/events" in r.url else None)
        page.goto(url)
        expect(page.locator("#signed-out")).to_be_visible()
        expect(page.locator("#view-overview")).to_be_hidden()
        expect(page.locator("#tabs")).to_be_hidden()
        assert page.evaluate("typeof msal") == "object"
        assert api_calls == []  # nothing is asked of the API before sign-in
        page.click("#sign-in-main")
        page.wait_for_url(re.compile(r".*/oauth2/v2\.0/authorize.*"))
    query = parse_qs(urlsplit(authorize[0]).query)
    assert query["client_id"] == [CLIENT]
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) >= 43
    assert query["redirect_uri"] == [url + "/"]
    assert f"api://{CLIENT}/.default" in query["scope"][0].split(" ")


def test_the_openapi_page_renders_from_vendored_files_under_the_csp(
    pages: WatchedPages, aoc_url: str
) -> None:
    page = pages.open()  # a CSP violation is a console error, which fails the test
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
    screenshot(page, "api-docs")
    assert external == []


def test_a_signed_in_analyst_reads_and_comments_with_a_verified_token(
    pages: WatchedPages, tmp_path: Path, fixtures_dir: Path
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

    pages.expected.append(f"{authority_host}/")  # the fake provider's 404s for what it lacks
    with serving(provider.app()) as provider_url:
        app = create_app(settings)
        app.state.token_verifier = TokenVerifier(
            settings, JwksCache(f"{provider_url}/{TENANT}/discovery/v2.0/keys")
        )
        with serving(app) as url:
            page = pages.open()
            page.route(f"{authority_host}/**", identity_provider)
            page.goto(f"{url}/?view=events&service=Exchange")
            page.click("#sign-in-main")
            # Back from the identity provider, on the view the analyst asked for.
            expect(rows(page)).to_have_count(20)
            expect(page.locator("#user")).to_have_text("dana@contoso.com")
            expect(page.locator("#sign-out")).to_be_visible()
            rows(page).first.click()
            page.fill("#comment-input", "Seen, signed in")
            page.click("#add-comment")
            expect(page.locator("#detail-comments li .muted")).to_contain_text(["dana@contoso.com"])
            page.click("#tab-alerts")
            expect(page.locator("#alerts tbody tr")).to_have_count(4)
            screenshot(page, "ui-signed-in")
            anonymous = httpx.get(f"{url}/api/events")
    assert anonymous.status_code == 401
    assert redeemed[0]["grant_type"] == ["authorization_code"]
    assert redeemed[0]["code"] == ["the-code"]
    assert len(redeemed[0]["code_verifier"][0]) >= 43
    assert provider.fetches == 1


def test_with_ai_on_an_analyst_asks_within_the_view_and_explains_a_cited_event(
    pages: WatchedPages, tmp_path: Path, fixtures_dir: Path
) -> None:
    stored_fixtures(tmp_path, fixtures_dir)
    added = [
        e
        for e in fixture_events(fixtures_dir)
        if e.operation == "Add user" and e.result == "success" and e.timestamp.month == 11
    ]
    newest = max(added, key=lambda e: e.timestamp)
    for llm in fake_llm():
        llm.reset(
            tool_call(
                service="Entra ID",
                operation="Add user",
                start="2026-11-01T00:00:00Z",
                end="2026-11-20T00:00:00Z",
            ),
            # The narrative cites one event found and one that was not: only the first is shown.
            function_call(
                "answer_question",
                {
                    "answer": f"15 users were added, the latest [event:{newest.id}].[event:ghost]",
                    "cited_event_ids": [newest.id, "ghost"],
                },
            ),
            # Explain: the model's words are tenant data, shown as text; citations become labels.
            function_call(
                "explain_event",
                {
                    "what_happened": "A user was added [field:operation]. <img src=x>",
                    "who_and_what": "In [field:service] [field:raw.ghost]",
                    "why_it_matters": "Routine for a directory sync account.",
                    "next_steps": ["Check the new account's roles [field:operation]"],
                    "risk": "low",
                    "cited_fields": ["operation", "service", "raw.ghost"],
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
            page = pages.open()
            # The view shows successes only: the question is answered within that filter.
            page.goto(f"{url}/?view=events&result=success")
            expect(rows(page)).to_have_count(50)

            page.fill("#question", "Who added users in Entra ID in November?")
            page.click("#ask-submit")

            expect(page.locator("#ask-summary")).to_have_text(
                "15 users were added, the latest event."
                " (1 citation(s) of events not among the results were removed.)"
            )
            expect(page.locator("#ask-query")).to_have_text(
                "service=Entra ID · operation=Add user · result=success"
                " · start=2026-11-01T00:00:00Z · end=2026-11-20T00:00:00Z"
            )
            expect(rows(page)).to_have_count(15)
            assert set(rows(page).locator(".col-service").all_inner_texts()) == {"Entra ID"}
            # The view state is the query that was run: the filters show it, Apply re-runs it,
            # and the URL shares it.
            expect(page.locator("#active-filters")).to_contain_text("service: Entra ID")
            expect(page.locator("#active-filters")).to_contain_text("operation: Add user")
            expect(page.locator("#active-filters")).to_contain_text("result: success")
            expect(page.locator("#start")).to_have_value("2026-11-01 00:00:00")
            expect(page.locator("#end")).to_have_value("2026-11-20 00:00:00")
            page.click("#apply")
            expect(page.locator("#status")).to_have_text("Showing 15 of 15 events · newest first")
            assert parse_qs(urlsplit(page.url).query)["operation"] == ["Add user"]
            screenshot(page, "ui-ask")

            # The cited event opens in the drawer; Explain explains that event, shown as text.
            page.locator("#ask-summary button.citation").click()
            expect(page.locator("#detail-title")).to_have_text(newest.display_summary)
            page.click("#explain-event")
            explanation = page.locator("#detail-explanation")
            expect(explanation.locator(".risk")).to_have_text("risk: low")
            expect(explanation).to_contain_text("A user was added operation. <img src=x>")
            expect(explanation.locator("img")).to_have_count(0)
            expect(explanation.locator("code.citation").first).to_have_attribute(
                "title", '"Add user"'
            )
            expect(explanation).to_contain_text("were removed: raw.ghost")
            screenshot(page, "ui-explain")
            # The next event in the drawer (j): the explanation was the previous one's.
            page.keyboard.press("j")
            expect(page).to_have_url(re.compile(f"event=(?!{newest.id})"))
            expect(explanation).to_be_hidden()

            asked, narrated, explained = llm.requests
            assert asked["messages"][-1]["content"] == "Who added users in Entra ID in November?"
            assert narrated["messages"][-1]["content"].startswith("Question: Who added users")
            assert f'"id":"{newest.id}"' in explained["messages"][-1]["content"]
