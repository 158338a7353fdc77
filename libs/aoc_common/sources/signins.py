"""Entra ID sign-in logs: Microsoft Graph `/auditLogs/signIns`, the log an account-compromise
investigation opens first.

v1.0 returns interactive user sign-ins only; non-interactive user, service principal and managed
identity sign-ins are on beta, chosen with `signInEventTypes/any(...)` (setting
`SIGNINS_EVENT_TYPES`). Sign-ins are the highest-volume Entra log, so the collector pages with
`$filter` on `createdDateTime` like the other Graph sources.

Outcome: `status.errorCode` 0 is a success; the codes Entra shows as "Interrupted" (a further step
such as MFA, a "stay signed in?" prompt or a device check was asked for: the credentials were not
refused, and no token was issued yet) are `partial`; every other code is a failure. The code and
Microsoft's reason are kept as `result_detail`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from aoc_common.events import Actor, GeoLocation, Result, Target
from aoc_common.sources.mapping import GRAPH_RECORD, DetailValue, Mapped, SourceMapping, validated
from aoc_common.sources.spec import (
    GraphPaging,
    GraphRequest,
    SourceLabels,
    SourceSpec,
)

SignInEventType = Literal[
    "interactiveUser", "nonInteractiveUser", "servicePrincipal", "managedIdentity"
]
INTERACTIVE: SignInEventType = "interactiveUser"

# Codes Entra's sign-in log shows as "Interrupted" rather than "Failure".
INTERRUPT_CODES = frozenset(
    {
        16000,  # account selection: several accounts signed in
        16001,  # account selection
        50058,  # silent sign-in interrupted: session information is not sufficient
        50072,  # the user must enrol for a second factor
        50074,  # strong authentication (MFA) required
        50076,  # MFA required (new location, policy)
        50079,  # the user must register for MFA
        50097,  # device authentication required
        50125,  # interrupted by a password reset or registration entry
        50129,  # device is not workplace joined
        50140,  # "Keep me signed in" prompt
        50143,  # session mismatch
        50158,  # external security challenge not yet satisfied
    }
)
# Conditional access refused the sign-in (whatever conditionalAccessStatus says).
CONDITIONAL_ACCESS_CODES = frozenset({53000, 53001, 53002, 53003, 530032})
# Clients that sign in with basic (legacy) authentication; "Browser" and "Mobile Apps and Desktop
# clients" are modern authentication. Microsoft's list for the legacy-authentication condition.
LEGACY_CLIENTS = frozenset(
    {
        "authenticated smtp",
        "smtp",
        "autodiscover",
        "exchange activesync",
        "exchange online powershell",
        "exchange web services",
        "imap",
        "imap4",
        "mapi over http",
        "offline address book",
        "outlook anywhere (rpc over http)",
        "outlook service",
        "pop",
        "pop3",
        "reporting web services",
        "other clients",
    }
)
RISK_LEVELS = frozenset({"low", "medium", "high"})
OPERATIONS: dict[str, str] = {
    "interactiveUser": "Sign-in",
    "nonInteractiveUser": "Non-interactive sign-in",
    "servicePrincipal": "Service principal sign-in",
    "managedIdentity": "Managed identity sign-in",
}


class SignInOptions(BaseSettings):
    """`SIGNINS_EVENT_TYPES`: which sign-ins to collect, comma-separated. Only `interactiveUser`
    (the default) reads Graph v1.0; any other type reads beta, which Microsoft does not support for
    production use and which carries far more records (non-interactive sign-ins above all)."""

    model_config = SettingsConfigDict(
        env_prefix="SIGNINS_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
    )

    event_types: Annotated[list[SignInEventType], NoDecode] = Field(
        default_factory=lambda: [INTERACTIVE], min_length=1
    )

    @field_validator("event_types", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class SignInPaging(GraphPaging):
    """Graph paging, on v1.0 for interactive sign-ins only and on beta with a `signInEventTypes`
    filter otherwise."""

    def first_request(
        self, start: datetime, end: datetime, options: BaseModel | None
    ) -> GraphRequest:
        types = options.event_types if isinstance(options, SignInOptions) else [INTERACTIVE]
        if list(dict.fromkeys(types)) == [INTERACTIVE]:
            return super().first_request(start, end, options)
        wanted = " or ".join(f"t eq '{t}'" for t in dict.fromkeys(types))
        return GraphRequest(
            "beta",
            self.path,
            {
                "$filter": f"{self.time_filter(start, end)} and signInEventTypes/any(t: {wanted})",
                "$top": str(self.page_size),
            },
        )


class SignInStatus(BaseModel):
    model_config = GRAPH_RECORD

    error_code: int | None = None
    failure_reason: str | None = None
    additional_details: str | None = None


class SignInLocation(BaseModel):
    model_config = GRAPH_RECORD

    city: str | None = None
    state: str | None = None
    country_or_region: str | None = None


class DeviceDetail(BaseModel):
    model_config = GRAPH_RECORD

    device_id: str | None = None
    display_name: str | None = None
    operating_system: str | None = None
    browser: str | None = None
    is_compliant: bool | None = None
    is_managed: bool | None = None
    trust_type: str | None = None


class SignInRecord(BaseModel):
    """A Graph `signIn` (v1.0 fields, plus the beta ones the mapper reads when present)."""

    model_config = GRAPH_RECORD

    id: str | None = None
    created_date_time: datetime
    user_id: str | None = None
    user_display_name: str | None = None
    user_principal_name: str | None = None
    app_id: str | None = None
    app_display_name: str | None = None
    resource_id: str | None = None
    resource_display_name: str | None = None
    ip_address: str | None = None
    client_app_used: str | None = None
    correlation_id: str | None = None
    conditional_access_status: str | None = None
    is_interactive: bool | None = None
    risk_level_during_sign_in: str | None = None
    risk_level_aggregated: str | None = None
    risk_state: str | None = None
    risk_detail: str | None = None
    risk_event_types_v2: list[str] = Field(default_factory=list, alias="riskEventTypes_v2")
    status: SignInStatus | None = None
    location: SignInLocation | None = None
    device_detail: DeviceDetail | None = None
    # beta only
    sign_in_event_types: list[str] = Field(default_factory=list)
    user_agent: str | None = None
    service_principal_id: str | None = None
    service_principal_name: str | None = None
    authentication_requirement: str | None = None


def sign_in_type(record: SignInRecord) -> str:
    """interactiveUser | nonInteractiveUser | servicePrincipal | managedIdentity (v1.0 answers
    carry only `isInteractive`, and v1.0 lists interactive sign-ins only)."""
    for event_type in record.sign_in_event_types:
        if event_type in OPERATIONS:
            return event_type
    return "nonInteractiveUser" if record.is_interactive is False else INTERACTIVE


def sign_in_outcome(status: SignInStatus | None) -> tuple[Result, str]:
    """(result, Entra's own status word): 0 success, interrupt codes partial, others failure."""
    if status is None or status.error_code is None:
        return "unknown", "unknown"
    if status.error_code == 0:
        return "success", "success"
    if status.error_code in INTERRUPT_CODES:
        return "partial", "interrupted"
    return "failure", "failure"


def is_legacy_authentication(client_app_used: str | None) -> bool:
    return (client_app_used or "").strip().casefold() in LEGACY_CLIENTS


def map_sign_in(payload: dict[str, Any], source_map: SourceMapping) -> Mapped:
    record = validated(SignInRecord, payload, "signIn record")
    event_type = sign_in_type(record)
    result, status_word = sign_in_outcome(record.status)
    status = record.status or SignInStatus()
    location = record.location
    geo = (
        GeoLocation(
            city=location.city, state=location.state, country_or_region=location.country_or_region
        )
        if location and (location.city or location.state or location.country_or_region)
        else None
    )
    if event_type in ("servicePrincipal", "managedIdentity"):
        actor = Actor(
            type="app",
            id=record.service_principal_id,
            display_name=record.service_principal_name or record.app_display_name,
            app_id=record.app_id,
            ip_address=record.ip_address,
            location=geo,
        )
    else:
        actor = Actor(
            type="user" if record.user_principal_name or record.user_id else "unknown",
            id=record.user_id,
            display_name=record.user_display_name,
            user_principal_name=record.user_principal_name,
            ip_address=record.ip_address,
            user_agent=record.user_agent,
            location=geo,
        )
    targets = (
        [Target(type="Application", id=record.app_id, display_name=record.app_display_name)]
        if (record.app_id or record.app_display_name)
        else []
    )
    if record.resource_display_name and record.resource_display_name != record.app_display_name:
        targets.append(
            Target(
                type="Resource", id=record.resource_id, display_name=record.resource_display_name
            )
        )
    legacy = is_legacy_authentication(record.client_app_used)
    blocked_by_ca = status.error_code in CONDITIONAL_ACCESS_CODES or (
        result == "failure" and (record.conditional_access_status or "").lower() == "failure"
    )
    device = record.device_detail or DeviceDetail()
    details: dict[str, DetailValue] = {
        "sign_in_type": event_type,
        "sign_in_status": status_word,
        "error_code": status.error_code,
        "app": record.app_display_name,
        "resource": record.resource_display_name,
        "client_app": record.client_app_used,
        "legacy_authentication": legacy,
        "conditional_access": record.conditional_access_status,
        "blocked_by_conditional_access": blocked_by_ca,
        "risk_level_during_sign_in": record.risk_level_during_sign_in,
        "risk_level_aggregated": record.risk_level_aggregated,
        "risk_state": record.risk_state,
        "risk_detail": record.risk_detail,
        "risk_event_types": record.risk_event_types_v2 or None,
        "authentication_requirement": record.authentication_requirement,
        "device": device.display_name,
        "device_os": device.operating_system,
        "browser": device.browser,
        "device_compliant": device.is_compliant,
        "device_managed": device.is_managed,
        "correlation_id": record.correlation_id,
    }
    country = geo.country_or_region if geo and geo.country_or_region else ""
    return Mapped(
        timestamp=record.created_date_time,
        operation=OPERATIONS[event_type],
        raw_category=event_type,
        service=source_map.default_service,
        raw_result=status_word,
        actor=actor,
        targets=targets,
        detail=record.client_app_used or "",
        tenant_id=None,
        result=result,
        result_detail=_result_detail(status, result),
        details={name: value for name, value in details.items() if value is not None},
        summary_values={
            "attempt": _ATTEMPT[result],
            "app": record.app_display_name or record.resource_display_name or "an application",
            "ip": record.ip_address or "",
            "country": country,
            "origin": _origin(record.ip_address, country, record.client_app_used, legacy),
            "outcome": _outcome(status, result, blocked_by_ca, record.risk_level_during_sign_in),
        },
    )


_ATTEMPT: dict[Result, str] = {
    "success": "signed in to",
    "failure": "failed to sign in to",
    "partial": "was interrupted signing in to",
    "unknown": "signed in to",
}


def _result_detail(status: SignInStatus, result: Result) -> str | None:
    """`50126: Error validating credentials …` for anything but a plain success."""
    extra = (status.additional_details or "").strip()
    if result == "success" or status.error_code is None:
        return extra or None
    reason = (status.failure_reason or "").strip()
    text = f"{status.error_code}: {reason}" if reason else str(status.error_code)
    return f"{text} ({extra})" if extra else text


def _origin(ip: str | None, country: str, client: str | None, legacy: bool) -> str:
    """`from 203.0.113.7 (NL) using IMAP4 (legacy authentication)`, leaving out what is unknown."""
    parts = []
    if ip:
        parts.append(f"from {ip}" + (f" ({country})" if country else ""))
    elif country:
        parts.append(f"from {country}")
    if legacy and client:
        parts.append(f"using {client} (legacy authentication)")
    return " ".join(parts)


def _outcome(
    status: SignInStatus, result: Result, blocked_by_ca: bool, risk_level: str | None
) -> str:
    """` — blocked by conditional access`, ` — invalid password (50126)`, ` — risk high`…"""
    suffix = ""
    if blocked_by_ca:
        suffix = " — blocked by conditional access"
    elif result in ("failure", "partial") and status.error_code is not None:
        reason = (status.failure_reason or "").strip().rstrip(".")
        suffix = f" — {reason} ({status.error_code})" if reason else f" — error {status.error_code}"
    if (risk_level or "").lower() in RISK_LEVELS:
        suffix += f" — sign-in risk {risk_level}"
    return suffix


SPEC = SourceSpec(
    id="signins",
    labels=SourceLabels(
        display_name="Entra ID sign-in logs",
        description="Entra ID sign-ins (users, and on beta service principals and managed identities)",
        retention="Microsoft Graph keeps Entra sign-in logs",
    ),
    record_id_field="id",
    record_time_field="createdDateTime",
    history_limit=timedelta(days=30),  # Entra ID P1/P2; reading sign-ins through Graph needs them
    collection=SignInPaging(
        path="auditLogs/signIns",
        time_field="createdDateTime",
        implicit_filter=("signInEventTypes", (INTERACTIVE,)),
    ),
    record_model=SignInRecord,
    mapper=map_sign_in,
    samples=("graph_signins_page*.json",),
    options=SignInOptions,
    summary_fields={
        "attempt": '"signed in to", "failed to sign in to" or "was interrupted signing in to"',
        "app": "the application signed in to",
        "ip": "the client IP address",
        "country": "the country or region Entra located the IP in (two letters)",
        "origin": '"from <ip> (<country>)", plus "using <client> (legacy authentication)"',
        "outcome": '" — blocked by conditional access", " — <reason> (<code>)", " — sign-in risk …"',
    },
)
