"""Serve an ASGI app on a free loopback port, for tests that need a real HTTP server: a fake identity
provider's key set, a stand-in for Graph, a SIEM or a chat webhook, the API under a real browser.

`serving` runs the server on a thread of its own (for sync callers such as Playwright's); `serving_here`
runs it as a task on the caller's event loop. Neither touches the process's signal handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import uvicorn

STARTUP_TIMEOUT_S = 20.0


def free_port() -> int:
    """A loopback port nobody listens on right now (for servers that must bind it themselves)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _TestServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # pytest owns the process's signals


def _bound_socket() -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    return listener


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """Yield the base URL (http://127.0.0.1:PORT) while the app serves from a thread; stop it after."""
    listener = _bound_socket()
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", ws="none")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            listener.close()
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT_S)
        listener.close()


@contextlib.asynccontextmanager
async def serving_here(
    app: Any, *, lifespan: str = "off", shutdown_timeout_s: float | None = None
) -> AsyncIterator[str]:
    """Yield the base URL while the app serves as a task on this event loop; stop it after."""
    listener = _bound_socket()
    port = listener.getsockname()[1]
    server = _TestServer(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan=lifespan,  # type: ignore[arg-type]
            timeout_graceful_shutdown=shutdown_timeout_s,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT_S):
            while not server.started:
                if task.done():
                    await task  # raises what stopped it
                    raise RuntimeError("the test server stopped before it started")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        listener.close()
