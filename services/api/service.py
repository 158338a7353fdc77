"""The API as a service: REST API, web UI, health and metrics on API_HOST:API_PORT, over the engines
it is given (it reads the store; it only pings the message log, for /health). Also the MCP server's
entry point, for `aoc mcp`."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from aoc_api.app import create_app
from aoc_api.server import serve
from aoc_common.engines import Engines
from aoc_common.service import ServiceDefinition
from aoc_common.settings import Settings


class ApiService:
    def __init__(self, settings: Settings, app: FastAPI) -> None:
        self.settings = settings
        self.app = app

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop`; raises RuntimeError when the address cannot be bound."""
        await serve(self.app, self.settings.api_host, self.settings.api_port, stop)


def build(settings: Settings, engines: Engines) -> ApiService:
    return ApiService(
        settings, create_app(settings, store=engines.store, message_log=engines.message_log)
    )


DEFINITION = ServiceDefinition("api", build)


async def serve_mcp_stdio(settings: Settings) -> int:
    """The read-only MCP tools over stdin/stdout, for AI assistants (`aoc mcp`)."""
    from aoc_api.mcp_server import serve_stdio

    return await serve_stdio(settings)
