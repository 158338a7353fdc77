"""`python -m aoc_api`: the API and web UI on API_HOST:API_PORT."""

from __future__ import annotations

import asyncio
import sys

from aoc_api.app import create_app
from aoc_api.server import serve
from aoc_common.service import run_service
from aoc_common.settings import Settings


async def main(settings: Settings, stop: asyncio.Event) -> None:
    await serve(create_app(settings), settings.api_host, settings.api_port, stop)


if __name__ == "__main__":
    sys.exit(run_service("api", main))
