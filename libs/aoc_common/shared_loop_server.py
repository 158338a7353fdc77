"""uvicorn inside an event loop the process already runs.

uvicorn normally installs its own SIGINT/SIGTERM handlers; in AOC the process owns them
(`aoc_common.service`, the demo), so the API, the Microsoft stand-in and the pipeline share one loop and
one shutdown. Both servers use this class rather than each overriding uvicorn alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator

import uvicorn


class SharedLoopServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
