"""Serve an ASGI app with uvicorn inside an existing event loop, stopping on the caller's event.

uvicorn normally owns the process's signals; here the process does (see aoc_common.service), so that the
API can share one loop and one shutdown with the pipeline in `aoc demo`.
"""

from __future__ import annotations

import asyncio

import uvicorn
from fastapi import FastAPI

from aoc_common.shared_loop_server import SharedLoopServer

GRACEFUL_SHUTDOWN_S = 5.0


async def serve(app: FastAPI, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve until `stop` is set; raises RuntimeError if the address cannot be bound."""
    server = SharedLoopServer(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            server_header=False,
            # Streams stay open as long as their clients (MCP over SSE, a streamable HTTP
            # session's GET): without a bound, shutting down would wait for them forever.
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    )

    async def _stop_when_asked() -> None:
        await stop.wait()
        for end_streams in getattr(app.state, "on_stop", ()):
            end_streams()  # streams held open by their clients would hold the shutdown
        server.should_exit = True

    watcher = asyncio.create_task(_stop_when_asked())
    try:
        await server.serve()
    except (
        SystemExit
    ):  # uvicorn exits the process when it cannot bind: here, one clear error instead
        pass
    finally:
        watcher.cancel()
    if not server.started:
        raise RuntimeError(f"could not serve on http://{host}:{port} (is the port in use?)")
