"""Headers every answer carries (security, caching) and the request counter, as one pure ASGI
middleware: it sees every response, errors included, without Starlette's BaseHTTPMiddleware (which
copies each body through a stream and costs every request a task)."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aoc_common.metrics import HTTP_REQUESTS
from aoc_common.settings import Settings

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def content_security_policy(settings: Settings) -> str:
    """Only our own files run; with sign-in on, MSAL.js may also talk to (and frame) the
    authority, for token requests and silent renewal."""
    authority = f" {settings.authority_host}" if settings.auth_enabled else ""
    return (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        f"connect-src 'self'{authority}; frame-src 'self'{authority}; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
    )


def _no_store(path: str) -> bool:
    """Audit events are sensitive: no browser or proxy keeps a copy of an API answer."""
    return path.startswith(("/api/", "/mcp")) or path in ("/health", "/metrics", "/openapi.json")


class ResponseHeadersAndMetrics:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.headers = {
            **SECURITY_HEADERS,
            "Content-Security-Policy": content_security_policy(settings),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers[name] = value
                if _no_store(scope["path"]) and "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
                route = getattr(scope.get("route"), "path", "unmatched")
                HTTP_REQUESTS.labels(scope["method"], route, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, send_with_headers)
