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
from aoc_common.sources.mapping import (
    GRAPH_RECORD,
    DetailValue,
    Mapped,
    SourceMapping,
    as_dict,
    as_list,
    as_str,
    list_of_text,
    parse_time,
    text,
)
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
        50199,  # "CmsiInterrupt": the user is asked to confirm the sign-in
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


class ManagedIdentity(BaseModel):
    model_config = GRAPH_RECORD

    msi_type: str | None = None
    associated_resource_id: str | None = None


class AppliedConditionalAccessPolicy(BaseModel):
    model_config = GRAPH_RECORD

    id: str | None = None
    display_name: str | None = None
    result: str | None = None


class SignInRecord(BaseModel):
    """A Graph `signIn` as documented (v1.0 fields, plus the beta ones the mapper reads when
    present). The mapper reads records field by field, tolerantly; this is the shape, for the docs
    and the Sigma field list."""

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
    applied_conditional_access_policies: list[AppliedConditionalAccessPolicy] | None = None
    is_interactive: bool | None = None
    risk_level_during_sign_in: str | None = None
    risk_level_aggregated: str | None = None
    risk_state: str | None = None
    risk_detail: str | None = None
    risk_event_types_v2: list[str] | None = Field(default=None, alias="riskEventTypes_v2")
    status: SignInStatus | None = None
    location: SignInLocation | None = None
    device_detail: DeviceDetail | None = None
    # beta only
    sign_in_event_types: list[str] | None = None
    user_agent: str | None = None
    user_type: str | None = None
    sign_in_identifier: str | None = None
    service_principal_id: str | None = None
    service_principal_name: str | None = None
    managed_service_identity: ManagedIdentity | None = None
    client_credential_type: str | None = None
    authentication_protocol: str | None = None
    authentication_requirement: str | None = None
    cross_tenant_access_type: str | None = None


WHAT = "signIn record"
# Graph writes an all-zero GUID where a sign-in has no user object (an account that does not exist).
NO_ID = "00000000-0000-0000-0000-000000000000"
# riskState words that say the sign-in itself is risky even when no level was given during it.
RISK_STATES = {"atRisk": "at risk", "confirmedCompromised": "confirmed compromised"}


def sign_in_type(payload: dict[str, Any]) -> str:
    """interactiveUser | nonInteractiveUser | servicePrincipal | managedIdentity.

    Beta records say it in `signInEventTypes`; v1.0 records (interactive users only) and beta
    records read with a `$select` that left it out say it by `managedServiceIdentity.msiType`, a
    service principal without a user, or `isInteractive`."""
    for event_type in as_list(payload.get("signInEventTypes")):
        if event_type in OPERATIONS:
            return event_type
    msi = as_dict(payload.get("managedServiceIdentity")).get("msiType")
    if msi in ("systemAssigned", "userAssigned"):
        return "managedIdentity"
    if (
        as_str(payload.get("servicePrincipalId")) or as_str(payload.get("servicePrincipalName"))
    ) and not (as_str(payload.get("userId")) or as_str(payload.get("userPrincipalName"))):
        return "servicePrincipal"
    return "nonInteractiveUser" if payload.get("isInteractive") is False else INTERACTIVE


def error_code(status: dict[str, Any]) -> int | None:
    """`status.errorCode` as a number (digits in a string too); None when the record has none."""
    code = status.get("errorCode")
    if code.__class__ is int:
        return code
    if isinstance(code, str) and code.strip().isdigit():
        return int(code)
    return None


def sign_in_outcome(code: int | None) -> tuple[Result, str]:
    """(result, Entra's own status word): 0 success, interrupt codes partial, others failure."""
    if code is None:
        return "unknown", "unknown"
    if code == 0:
        return "success", "success"
    if code in INTERRUPT_CODES:
        return "partial", "interrupted"
    return "failure", "failure"


def is_legacy_authentication(client_app_used: str | None) -> bool:
    return (client_app_used or "").strip().casefold() in LEGACY_CLIENTS


def map_sign_in(payload: dict[str, Any], source_map: SourceMapping) -> Mapped:
    """A sign-in, read tolerantly: only the time is required; an optional field of an unexpected
    shape is left out, never a reason to drop the record."""
    timestamp = parse_time(payload.get("createdDateTime"), "createdDateTime", WHAT)
    event_type = sign_in_type(payload)
    status = as_dict(payload.get("status"))
    code = error_code(status)
    result, status_word = sign_in_outcome(code)
    geo = _location(payload.get("location"))
    ip = as_str(payload.get("ipAddress"))
    names = source_map.names
    app_id, resource_id = as_str(payload.get("appId")), as_str(payload.get("resourceId"))
    app_name = as_str(payload.get("appDisplayName")) or names.application(app_id)
    resource_name = as_str(payload.get("resourceDisplayName")) or names.application(resource_id)
    client = as_str(payload.get("clientAppUsed"))
    msi = as_dict(payload.get("managedServiceIdentity"))
    if event_type in ("servicePrincipal", "managedIdentity"):
        actor = Actor(
            type="app",
            id=as_str(payload.get("servicePrincipalId")),
            display_name=as_str(payload.get("servicePrincipalName")) or app_name,
            app_id=app_id,
            ip_address=ip,
            location=geo,
        )
        # The application of an app-only sign-in is the signer itself: it signed in to the resource.
        targets = _targets(("Resource", resource_id, resource_name))
        signed_in_to = resource_name or app_name
    else:
        actor = _user(payload, ip, geo)
        targets = _targets(
            ("Application", app_id, app_name), ("Resource", resource_id, resource_name)
        )
        signed_in_to = app_name or resource_name
    legacy = is_legacy_authentication(client)
    ca_status = as_str(payload.get("conditionalAccessStatus"))
    blocked_by_ca = code in CONDITIONAL_ACCESS_CODES or (
        result == "failure" and (ca_status or "").lower() == "failure"
    )
    device = as_dict(payload.get("deviceDetail"))
    risk_level = as_str(payload.get("riskLevelDuringSignIn"))
    risk_state = as_str(payload.get("riskState"))
    risk_types = list_of_text(payload.get("riskEventTypes_v2"))
    details: dict[str, DetailValue] = {
        "sign_in_type": event_type,
        "sign_in_status": status_word,
        "error_code": code,
        "app": app_name,
        "resource": resource_name,
        "client_app": client,
        "legacy_authentication": legacy,
        "conditional_access": ca_status,
        "blocked_by_conditional_access": blocked_by_ca,
        "conditional_access_failed_policies": _failed_policies(
            payload.get("appliedConditionalAccessPolicies")
        ),
        "risk_level_during_sign_in": risk_level,
        "risk_level_aggregated": as_str(payload.get("riskLevelAggregated")),
        "risk_state": risk_state,
        "risk_detail": as_str(payload.get("riskDetail")),
        "risk_event_types": risk_types or None,
        "authentication_requirement": as_str(payload.get("authenticationRequirement")),
        "authentication_protocol": _meaningful(payload.get("authenticationProtocol")),
        "client_credential_type": _meaningful(payload.get("clientCredentialType")),
        "managed_identity_type": _meaningful(msi.get("msiType")),
        "managed_identity_resource": as_str(msi.get("associatedResourceId")),
        "user_type": as_str(payload.get("userType")),
        "cross_tenant_access_type": _meaningful(payload.get("crossTenantAccessType")),
        "device": as_str(device.get("displayName")),
        "device_os": as_str(device.get("operatingSystem")),
        "browser": as_str(device.get("browser")),
        "device_compliant": _flag(device.get("isCompliant")),
        "device_managed": _flag(device.get("isManaged")),
        "correlation_id": as_str(payload.get("correlationId")),
    }
    country = geo.country_or_region if geo and geo.country_or_region else ""
    return Mapped(
        timestamp=timestamp,
        operation=OPERATIONS[event_type],
        raw_category=event_type,
        service=source_map.default_service,
        raw_result=status_word,
        actor=actor,
        targets=targets,
        detail=client or "",
        tenant_id=None,
        result=result,
        result_detail=_result_detail(status, code, result),
        details={name: value for name, value in details.items() if value is not None},
        summary_values={
            "attempt": _ATTEMPT[result],
            "app": signed_in_to or "an application",
            "ip": ip or "",
            "country": country,
            "origin": _origin(ip, country, client, legacy),
            "outcome": _outcome(
                status, code, result, blocked_by_ca, risk_level, risk_state, risk_types
            ),
        },
    )


def _user(payload: dict[str, Any], ip: str | None, geo: GeoLocation | None) -> Actor:
    """The user who signed in, by whatever the record names them: UPN, display name, the
    identifier typed (beta: a phone number, an on-premises name…) or only the object id."""
    upn = as_str(payload.get("userPrincipalName"))
    user_id = as_str(payload.get("userId"))
    if user_id == NO_ID:
        user_id = None
    identifier = as_str(payload.get("signInIdentifier"))
    name = as_str(payload.get("userDisplayName")) or (identifier if identifier != upn else None)
    return Actor(
        type="user" if upn or user_id or name else "unknown",
        id=user_id,
        display_name=name,
        user_principal_name=upn,
        ip_address=ip,
        user_agent=as_str(payload.get("userAgent")),
        location=geo,
    )


def _targets(*parts: tuple[str, str | None, str | None]) -> list[Target]:
    """The application and resource signed in to, each once (a sign-in to Exchange Online through
    Exchange Online names it twice)."""
    targets: list[Target] = []
    for kind, target_id, name in parts:
        if (target_id or name) and not any(
            (name and t.display_name == name) or (target_id and t.id == target_id) for t in targets
        ):
            targets.append(Target(type=kind, id=target_id, display_name=name))
    return targets


def _location(value: Any) -> GeoLocation | None:
    location = as_dict(value)
    city, state, country = (
        as_str(location.get("city")),
        as_str(location.get("state")),
        as_str(location.get("countryOrRegion")),
    )
    if city or state or country:
        return GeoLocation(city=city, state=state, country_or_region=country)
    return None


def _failed_policies(value: Any) -> list[str] | None:
    """Names of the conditional access policies whose controls the sign-in did not meet (the ones
    that blocked it; report-only policies are only reports)."""
    names = [
        name
        for policy in as_list(value)
        if isinstance(policy, dict)
        and policy.get("result") == "failure"
        and (name := as_str(policy.get("displayName")))
    ]
    return names or None


def _meaningful(value: Any) -> str | None:
    """An enum word worth keeping: Graph's "none" and "unknownFutureValue" say nothing."""
    word = as_str(value)
    return None if word in (None, "none", "unknownFutureValue") else word


def _flag(value: Any) -> bool | None:
    return value if value.__class__ is bool else None


_ATTEMPT: dict[Result, str] = {
    "success": "signed in to",
    "failure": "failed to sign in to",
    "partial": "was interrupted signing in to",
    "unknown": "signed in to",
}


def _result_detail(status: dict[str, Any], code: int | None, result: Result) -> str | None:
    """`50126: Error validating credentials …` for anything but a plain success."""
    extra = (text(status.get("additionalDetails")) or "").strip()
    if result == "success" or code is None:
        return extra or None
    reason = text(status.get("failureReason"))
    detail = f"{code}: {reason}" if reason else str(code)
    return f"{detail} ({extra})" if extra else detail


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
    status: dict[str, Any],
    code: int | None,
    result: Result,
    blocked_by_ca: bool,
    risk_level: str | None,
    risk_state: str | None,
    risk_types: list[str],
) -> str:
    """` — blocked by conditional access`, ` — invalid password (50126)`, ` — sign-in risk high
    (anonymizedIPAddress)`, ` — sign-in at risk (leakedCredentials)`…"""
    suffix = ""
    if blocked_by_ca:
        suffix = " — blocked by conditional access"
    elif result in ("failure", "partial") and code is not None:
        reason = (text(status.get("failureReason")) or "").rstrip(".")
        suffix = f" — {reason} ({code})" if reason else f" — error {code}"
    why = f" ({', '.join(risk_types)})" if risk_types else ""
    if (risk_level or "").lower() in RISK_LEVELS:
        suffix += f" — sign-in risk {risk_level}{why}"
    elif risk_state in RISK_STATES:
        suffix += f" — sign-in {RISK_STATES[risk_state]}{why}"
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
    name_enrichment="actor",  # a sign-in that carries only a userId is named through Graph
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
