"""The API called in-process, as the tests of its routes call it."""

from __future__ import annotations

import httpx
from starlette.types import ASGIApp


def asgi_client(app: ASGIApp, *, raise_app_exceptions: bool = False) -> httpx.AsyncClient:
    """An HTTP client of `app` over ASGI (no socket), for `async with`. An exception the app does not
    handle comes back as the 500 a user would get, unless `raise_app_exceptions`."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://aoc.test")
