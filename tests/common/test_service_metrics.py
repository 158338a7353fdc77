"""A service process (`aoc run <service>`) serves its Prometheus metrics when METRICS_PORT is set, so an
operator can watch the consumers' lag, retries and dead letters, not just the API's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.utils.local_servers import free_port

AOC = Path(sys.executable).with_name("aoc")


def test_a_consumer_process_serves_metrics_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "MONGO_"))}
    env.update(DATA_DIR=str(tmp_path), METRICS_PORT=str(port), METRICS_HOST="127.0.0.1")
    process = subprocess.Popen(
        [str(AOC), "run", "store"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
                break
            except httpx.TransportError:
                time.sleep(0.1)  # polling a port, not synchronising tests
        assert "# TYPE aoc_dead_letters_total counter" in body
        assert "# TYPE aoc_consumer_lag_messages gauge" in body
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output


def test_a_metrics_port_in_use_stops_start_up_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "MONGO_"))}
        env.update(DATA_DIR=str(tmp_path), METRICS_PORT=str(port), METRICS_HOST="127.0.0.1")
        result = subprocess.run(
            [str(AOC), "run", "store"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert "metrics endpoint could not start" in result.stdout + result.stderr
