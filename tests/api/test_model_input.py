"""What a language model may be given of an event, the pure part: secrets masked by name and by
shape (and facts kept), the size bounded, and citations checked against what was given."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import orjson
import pytest

from aoc_api.model_input import OMITTED_RAW, event_for_model, resolve_path
from aoc_api.model_output import check_citations
from aoc_api.redaction import MASK, mask_secrets, mask_text
from tests.utils.records import fixture_events


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2ln", f"Bearer {MASK}"),
        ("id_token=eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjM0In0.", f"id_token={MASK}"),
        (
            "https://contoso.sharepoint.com/f.docx?sv=2026&sig=AbC%2Bxyz&se=2026-12-01",
            f"https://contoso.sharepoint.com/f.docx?sv=2026&sig={MASK}&se=2026-12-01",
        ),
        (
            "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=ab/c+d==;EndpointSuffix=n",
            f"DefaultEndpointsProtocol=https;AccountName=x;AccountKey={MASK};EndpointSuffix=n",
        ),
        (
            "Set-Mailbox -Identity bob -Password P@ss1 -Force",
            f"Set-Mailbox -Identity bob -Password {MASK} -Force",
        ),
        ("client secret abc8Q~Zk3lN0pQrStUvWxYz0123456789abcd", f"client secret {MASK}"),
        ("ghp_abcdefghijABCDEFGHIJ1234567890 leaked", f"{MASK} leaked"),
        ("-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----", MASK),
    ],
    ids=[
        "bearer-jwt",
        "jwt-parameter",
        "sas-signature",
        "connection-string",
        "cmdlet",
        "entra-secret",
        "github-token",
        "pem",
    ],
)
def test_credential_shaped_text_is_masked_where_it_stands(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "0f21ddb6-6cad-4a26-8d11-6ece1738f7d9",
        "User_eb7f1414-f6de-2fbe-8091-5aaf4110b8bc",
        "sites/FinanceTeam/Shared Documents/Report2026Q3Final/Budget2027.xlsx",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "smtp:exfil@evil.example",
    ],
)
def test_ids_paths_agents_digests_and_addresses_are_kept(text: str) -> None:
    assert mask_text(text) == text


def test_random_keys_are_masked_by_shape_whatever_field_holds_them() -> None:
    keys = [base64.b64encode(secrets.token_bytes(32)).decode() for _ in range(50)]
    keys += [secrets.token_urlsafe(32) for _ in range(50)]

    assert sum(mask_text(f"note: {key}") == f"note: {MASK}" for key in keys) >= 95


def test_secret_fields_are_masked_by_name_and_metadata_about_secrets_is_kept() -> None:
    record = {
        "Parameters": [
            {"Name": "Password", "Value": "hunter2"},
            {"Name": "Identity", "Value": "bob@contoso.com"},
        ],
        "modifiedProperties": [
            {"displayName": "PasswordCredentials", "oldValue": "[]", "newValue": '["s3cr3t"]'},
            {"displayName": "StsRefreshTokensValidFrom", "newValue": "2026-11-08T11:00:00Z"},
        ],
        "passwordProfile": {"password": "x", "forceChangePasswordNextSignIn": True},
        "client_secret": "plain",
        "tokenIssuerType": "AzureAD",
        "passwordPolicies": "DisablePasswordExpiration",
        "keyId": "7a1c",
    }

    assert mask_secrets(record) == {
        "Parameters": [
            {"Name": "Password", "Value": MASK},
            {"Name": "Identity", "Value": "bob@contoso.com"},
        ],
        "modifiedProperties": [
            {"displayName": "PasswordCredentials", "oldValue": "[]", "newValue": MASK},
            {"displayName": "StsRefreshTokensValidFrom", "newValue": "2026-11-08T11:00:00Z"},
        ],
        "passwordProfile": {"password": MASK, "forceChangePasswordNextSignIn": True},
        "client_secret": MASK,
        "tokenIssuerType": "AzureAD",
        "passwordPolicies": "DisablePasswordExpiration",
        "keyId": "7a1c",
    }


def test_an_event_for_the_model_is_its_own_fields_without_comments_within_the_budget(
    fixtures_dir: Path,
) -> None:
    event = next(e for e in fixture_events(fixtures_dir) if e.operation == "Set-Mailbox")
    huge = event.model_copy(
        update={
            "raw": {**event.raw, "Blob": ["x" * 5000] * 200, "Nested": {"a": {"b": [1] * 900}}},
            "comments": [{"author": "ana", "text": "private note", "created_at": event.timestamp}],
        }
    )

    roomy = event_for_model(event, 20_000)
    tight = event_for_model(huge, 3000)
    tiny = event_for_model(huge, 800)

    assert roomy["raw"] == event.raw and roomy["id"] == event.id
    assert "comments" not in roomy and "raw_text" not in roomy
    assert len(orjson.dumps(tight)) <= 3000 and tight["operation"] == "Set-Mailbox"
    assert tight["raw"] == OMITTED_RAW or "x" * 500 not in orjson.dumps(tight["raw"]).decode()
    assert len(orjson.dumps(tiny)) <= 800 and tiny["id"] == event.id
    assert "private note" not in orjson.dumps([roomy, tight, tiny]).decode()


def test_a_path_names_a_field_only_if_the_document_has_it() -> None:
    document = {
        "actor": {"user_principal_name": "a@contoso.com"},
        "raw": {"Parameters": [{"Name": "Identity", "Value": "x"}], "@odata.type": "#audit"},
    }

    assert resolve_path(document, "actor.user_principal_name") == (True, "a@contoso.com")
    assert resolve_path(document, "raw.Parameters[0].Value") == (True, "x")
    assert resolve_path(document, "raw.@odata.type") == (True, "#audit")
    for missing in ("raw.Parameters[1].Value", "raw.Parameters.Value", "actor", "", "a..b"):
        assert resolve_path(document, missing)[0] is (missing == "actor")


def test_citations_that_do_not_hold_are_removed_from_the_text_and_reported() -> None:
    texts = ["Set by [field:a] and [field:b] [event:x].", "See [field:c]."]

    cleaned, checked = check_citations(texts, ["a", "d"], "field", lambda path: path in {"a", "c"})

    assert cleaned == ["Set by [field:a] and.", "See [field:c]."]
    assert (checked.kept, checked.dropped) == (["a", "c"], ["b", "d"])
