"""What the web UI needs to know before its first data call: how to sign in, and what is switched on.

`/api/config/auth` is public (the UI reads it to know whether to sign in at all) and so holds only
what a sign-in page shows anyway: tenant, client id, authority, scopes. Never a secret.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from aoc_api.dependencies import SettingsDep
from aoc_common.settings import Settings

router = APIRouter(prefix="/api/config", tags=["config"])


class AuthConfig(BaseModel):
    enabled: bool
    tenant_id: str | None = None
    client_id: str | None = Field(default=None, description="MSAL clientId of the web UI")
    authority: str | None = Field(default=None, description="MSAL authority URL")
    scopes: list[str] = Field(default_factory=list, description="Scopes the UI asks tokens for")
    writer_roles: list[str] = Field(default_factory=list)


class FeatureFlags(BaseModel):
    auth: bool
    alerts: bool
    ai: bool
    siem: bool
    periodic_fetch: bool
    ai_features_enabled: bool = Field(
        description="Questions (/api/ask, MCP ask) are on: the same as `ai`, the name earlier "
        "AOC clients read"
    )
    ai_explain: bool = Field(
        description="POST /api/events/{id}/explain is on (AI on and AI_SEND_EVENT_FIELDS)"
    )
    fetch_interval_minutes: int = Field(
        description="How often the collector fetches when periodic_fetch is on (staleness)"
    )


def auth_config(settings: Settings) -> AuthConfig:
    """The UI and the API share one app registration: the UI asks for a token for the API's
    own application id URI, with the permissions the registration grants (`.default`)."""
    if not settings.auth_enabled:
        return AuthConfig(enabled=False)
    return AuthConfig(
        enabled=True,
        tenant_id=settings.auth_tenant_id,
        client_id=settings.auth_client_id,
        authority=f"{settings.authority_host}/{settings.auth_tenant_id}",
        scopes=[f"api://{settings.auth_client_id}/.default"],
        writer_roles=settings.auth_writer_roles,
    )


@router.get("/auth", response_model=AuthConfig, summary="How the UI signs in (public)")
async def get_auth_config(settings: SettingsDep) -> AuthConfig:
    return auth_config(settings)


@router.get("/features", response_model=FeatureFlags, summary="Which optional features are on")
async def get_features(settings: SettingsDep) -> FeatureFlags:
    return FeatureFlags(
        auth=settings.auth_enabled,
        alerts=settings.alerts_enabled,
        ai=settings.ai_features_enabled,
        siem=settings.siem_enabled,
        periodic_fetch=settings.enable_periodic_fetch,
        ai_features_enabled=settings.ai_features_enabled,
        ai_explain=settings.ai_features_enabled and settings.ai_send_event_fields,
        fetch_interval_minutes=settings.fetch_interval_minutes,
    )
