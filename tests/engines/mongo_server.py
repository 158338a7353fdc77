"""SecantusDB (MongoDB protocol) server fixture.

One in-process SecantusDB per test session, on a free loopback port, so that the Mongo event store
is tested over the real wire protocol with the real driver. `AOC_TEST_MONGO_URI` points the same
tests at a real MongoDB instead. A server that cannot start fails the session: never a skip, which
would let the Mongo half of the contract go untested without anyone noticing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

STARTUP_TIMEOUT_SECONDS = 10.0


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    """mongodb://127.0.0.1:PORT of a MongoDB-protocol server that lives for the session."""
    configured = os.environ.get("AOC_TEST_MONGO_URI")
    if configured:
        yield configured
        return

    from secantus import SecantusDBServer

    server = SecantusDBServer(storage_path=":memory:", host="127.0.0.1", port=0)
    try:
        server.start()
        # start() returns once the listener is bound; connecting proves it accepts clients.
        with socket.create_connection(("127.0.0.1", server.port), STARTUP_TIMEOUT_SECONDS):
            pass
    except Exception as error:
        server.stop()
        pytest.fail(f"SecantusDB did not start on 127.0.0.1: {error!r}", pytrace=False)
    try:
        yield f"mongodb://127.0.0.1:{server.port}"
    finally:
        server.stop()
