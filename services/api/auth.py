"""API authentication and authorisation: Entra ID bearer tokens, verified against the tenant's keys.

With AUTH_ENABLED=false every request passes as the anonymous principal. With it on:

- the token must be an RS256 JWT signed by a key of the tenant's JWKS
  (`AUTHORITY_HOST/<AUTH_TENANT_ID>/discovery/v2.0/keys`, see aoc_api.signing_keys: cached, fetched
  in the background, never making a valid request wait on a forged one), issued by the tenant
  (v2 `AUTHORITY_HOST/<tenant>/v2.0` or v1 `https://sts.windows.net/<tenant>/`), for this API
  (`aud` = AUTH_CLIENT_ID or `api://AUTH_CLIENT_ID`), inside its `exp`/`nbf` window
  (AUTH_CLOCK_SKEW_SECONDS of leeway), with `tid` = AUTH_TENANT_ID. Anything else is 401: forged,
  expired, wrong audience or issuer, `alg=none`, HS256 signed with the public key. Keys that cannot
  be fetched are 503.
- reading needs one of AUTH_ALLOWED_ROLES (app roles, `roles` claim) or AUTH_ALLOWED_GROUPS (group
  object ids, `groups` claim); with both empty any valid token of the tenant may read. Writing (tags,
  comments, rules, acknowledging alerts) needs one of AUTH_WRITER_ROLES or AUTH_WRITER_GROUPS
  (default role `AOC.Writer`; `AUTH_WRITER_ROLES=*` lets every reader write). A writer is a reader.
  Missing rights are 403.

`guard_api_request` is installed on the whole app, so every `/api/*` route, including routes other
branches add, needs a reader (a writer for any method other than GET/HEAD/OPTIONS, except the
read-only POSTs such as `/api/ask` and `/api/events/{id}/explain`), except the
public `/api/config/auth`, `/api/version` and the Graph webhook (clientState-checked). Routes that
need the caller's identity declare `Depends(require_reader)` / `Depends(require_writer)`; the
principal is verified once per request.
This module never logs a token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import HTTPException, Request
from jose import jwk, jws, jwt
from jose.exceptions import JOSEError
from pydantic import BaseModel, ConfigDict, Field

from aoc_api.signing_keys import JwksCache, KeysUnavailable, UnknownSigningKey
from aoc_common.logging import get_logger
from aoc_common.settings import Settings

log = get_logger(__name__)

ALGORITHM = "RS256"
# The Graph webhook is called by Microsoft, which holds no token of ours: it proves itself with the
# subscription's clientState instead (routes/sources.py).
PUBLIC_API_PATHS = frozenset({"/api/config/auth", "/api/version", "/api/webhooks/graph"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# POSTs that only read (a question's body is too long and too private for a query string): a
# reader may send them.
READ_ONLY_POST_PATHS = frozenset({"/api/ask"})
# The same, for paths naming an event: explaining one only reads it.
READ_ONLY_POST_PATTERNS = (re.compile(r"^/api/events/[^/]+/explain$"),)
ANY_READER = "*"


class Principal(BaseModel):
    """Who is calling: from the token's claims, or the anonymous principal when auth is off."""

    model_config = ConfigDict(frozen=True)

    name: str
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    object_id: str | None = None
    tenant_id: str | None = None
    authenticated: bool = False
    groups_overage: bool = Field(
        default=False, description="The token lists too many groups to carry them"
    )
    expires_at: float | None = Field(
        default=None, description="The token's `exp` (epoch seconds): nothing it opens outlives it"
    )


ANONYMOUS = Principal(name="anonymous")


class TokenRejected(Exception):
    """The bearer token is not one this API accepts (answered 401); the message says why."""


# --- the core: pure functions over settings and claims -------------------------------------------


def jwks_url(settings: Settings) -> str:
    return f"{settings.authority_host}/{settings.auth_tenant_id}/discovery/v2.0/keys"


def accepted_issuers(settings: Settings) -> tuple[str, ...]:
    """v2.0 tokens name the authority; v1.0 tokens (accessTokenAcceptedVersion 1) name sts."""
    tenant = settings.auth_tenant_id
    return (f"{settings.authority_host}/{tenant}/v2.0", f"https://sts.windows.net/{tenant}/")


def accepted_audiences(settings: Settings) -> frozenset[str]:
    client_id = settings.auth_client_id
    return frozenset({f"{client_id}", f"api://{client_id}"})


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


def principal_from_claims(claims: Mapping[str, Any], settings: Settings) -> Principal:
    """Check what the signature check leaves (audience, tenant) and say who the caller is."""
    audiences = _strings(claims.get("aud"))
    if not set(audiences) & accepted_audiences(settings):
        raise TokenRejected("token is not for this API (aud)")
    if claims.get("tid") != settings.auth_tenant_id:
        raise TokenRejected("token is from another tenant (tid)")
    app_id = claims.get("azp") or claims.get("appid")
    name = next(
        (
            claims[claim]
            for claim in ("preferred_username", "upn", "unique_name", "email", "name")
            if isinstance(claims.get(claim), str) and claims[claim]
        ),
        None,
    )
    if name is None:
        name = f"app:{app_id}" if isinstance(app_id, str) else str(claims.get("oid") or "unknown")
    claim_names = claims.get("_claim_names")
    return Principal(
        name=name[:200],
        roles=_strings(claims.get("roles")),
        groups=_strings(claims.get("groups")),
        object_id=claims.get("oid") if isinstance(claims.get("oid"), str) else None,
        tenant_id=claims.get("tid"),
        authenticated=True,
        groups_overage=isinstance(claim_names, Mapping) and "groups" in claim_names,
        expires_at=float(claims["exp"]) if isinstance(claims.get("exp"), int | float) else None,
    )


def _holds(principal: Principal, roles: Sequence[str], groups: Sequence[str]) -> bool:
    return bool(set(principal.roles) & set(roles) or set(principal.groups) & set(groups))


def _writers_are_anyone(settings: Settings) -> bool:
    return ANY_READER in settings.auth_writer_roles


def read_denial(principal: Principal, settings: Settings) -> str | None:
    """Why this principal may not read, or None. A writer may always read."""
    if not settings.auth_enabled:
        return None
    if not (settings.auth_allowed_roles or settings.auth_allowed_groups):
        return None
    roles = [*settings.auth_allowed_roles]
    groups = [*settings.auth_allowed_groups, *settings.auth_writer_groups]
    if not _writers_are_anyone(settings):
        roles += settings.auth_writer_roles
    if _holds(principal, roles, groups):
        return None
    return _missing("read events", principal)


def write_denial(principal: Principal, settings: Settings) -> str | None:
    """Why this principal may not change anything, or None."""
    if not settings.auth_enabled:
        return None
    denial = read_denial(principal, settings)
    if denial is not None or _writers_are_anyone(settings):
        return denial
    if _holds(principal, settings.auth_writer_roles, settings.auth_writer_groups):
        return None
    return _missing("change anything", principal)


def _missing(action: str, principal: Principal) -> str:
    reason = f"{principal.name} has no role or group allowed to {action}"
    if principal.groups_overage:
        reason += " (the token lists too many groups to carry them: grant an app role instead)"
    return reason


# --- the shell: the tenant's keys and the token check --------------------------------------------


class TokenVerifier:
    """Checks a bearer token end to end and returns the principal it proves."""

    def __init__(self, settings: Settings, jwks: JwksCache | None = None) -> None:
        self.settings = settings
        self.jwks = jwks or JwksCache(jwks_url(settings))

    async def verify(self, token: str) -> Principal:
        try:
            header = jws.get_unverified_header(token)
        except JOSEError as error:
            raise TokenRejected("token is not a signed JWT") from error
        if header.get("alg") != ALGORITHM:
            raise TokenRejected(f"token algorithm must be {ALGORITHM}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("token names no signing key (kid)")
        try:
            key = await self.jwks.key(kid)
        except UnknownSigningKey:
            raise TokenRejected(
                "token is signed with a key the tenant does not publish (kid)"
            ) from None
        try:
            claims = jwt.decode(
                token,
                jwk.construct(key, ALGORITHM),
                algorithms=[ALGORITHM],
                issuer=accepted_issuers(self.settings),
                options={
                    "verify_aud": False,  # checked below: Entra ID issues two audience forms
                    "require_exp": True,
                    "leeway": self.settings.auth_clock_skew_seconds,
                },
            )
        except jwt.ExpiredSignatureError as error:
            raise TokenRejected("token has expired") from error
        except jwt.JWTClaimsError as error:
            raise TokenRejected(f"token claims are not accepted: {error}") from error
        except JOSEError as error:
            raise TokenRejected("token signature is not valid") from error
        return principal_from_claims(claims, self.settings)


def bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenRejected("a bearer token is required")
    return token.strip()


def token_verifier(request: Request) -> TokenVerifier:
    """One verifier (and key cache) per app; tests may put their own on `app.state`."""
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        verifier = TokenVerifier(request.app.state.settings)
        request.app.state.token_verifier = verifier
    return verifier


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(401, reason, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


async def current_principal(request: Request) -> Principal:
    """The verified caller (once per request), or the anonymous principal when auth is off."""
    settings: Settings = request.app.state.settings
    if not settings.auth_enabled:
        return ANONYMOUS
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    try:
        principal = await token_verifier(request).verify(
            bearer_token(request.headers.get("authorization"))
        )
    except TokenRejected as error:
        log.info("token_rejected", path=request.url.path, reason=str(error))
        raise _unauthorized(str(error)) from None
    except KeysUnavailable as error:
        log.warning("jwks_unavailable", problem=str(error))
        raise HTTPException(503, "Tokens cannot be verified right now; try again.") from None
    request.state.principal = principal
    return principal


async def require_reader(request: Request) -> Principal:
    """FastAPI dependency: a caller allowed to read (anyone when auth is off)."""
    principal = await current_principal(request)
    denial = read_denial(principal, request.app.state.settings)
    if denial is not None:
        raise HTTPException(403, denial)
    return principal


async def require_writer(request: Request) -> Principal:
    """FastAPI dependency: a caller allowed to change tags, comments, rules and alerts."""
    principal = await current_principal(request)
    denial = write_denial(principal, request.app.state.settings)
    if denial is not None:
        raise HTTPException(403, denial)
    return principal


async def require_docs_reader(request: Request) -> None:
    """`/docs` and `/openapi.json`: a reader with sign-in on, unless PUBLIC_API_DOCS."""
    settings: Settings = request.app.state.settings
    if settings.auth_enabled and not settings.public_api_docs:
        await require_reader(request)


async def require_metrics_reader(request: Request) -> None:
    """`/metrics` on the API's port: a reader with sign-in on (METRICS_PORT serves it without a
    token, on an address only the scraper reaches)."""
    settings: Settings = request.app.state.settings
    if settings.auth_enabled:
        await require_reader(request)


def is_read_only_post(path: str) -> bool:
    return path in READ_ONLY_POST_PATHS or any(p.match(path) for p in READ_ONLY_POST_PATTERNS)


def is_protected(method: str, path: str) -> bool:
    return path.startswith("/api/") and path not in PUBLIC_API_PATHS


async def guard_api_request(request: Request) -> None:
    """App-wide dependency: readers for `/api/*` reads, writers for every other method."""
    if not is_protected(request.method, request.url.path):
        return
    if request.method in READ_METHODS or (
        request.method == "POST" and is_read_only_post(request.url.path)
    ):
        await require_reader(request)
    else:
        await require_writer(request)


def add_bearer_security(schema: dict[str, Any]) -> dict[str, Any]:
    """Mark the protected operations of an OpenAPI document as needing a bearer token."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["EntraIdBearer"] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "Entra ID access token for this API (aud = AUTH_CLIENT_ID)",
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if is_protected(method.upper(), path):
                operation["security"] = [{"EntraIdBearer": []}]
                responses = operation.setdefault("responses", {})
                responses.setdefault("401", {"description": "Missing or invalid bearer token"})
                responses.setdefault("403", {"description": "Signed in without the needed role"})
    return schema
