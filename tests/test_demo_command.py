"""`aoc demo` as a user runs it: one command, no servers, the fixtures end to end, the API and UI served."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.utils.local_servers import free_port

AOC = Path(sys.executable).with_name("aoc")


def start_demo(tmp_path: Path, port: int) -> tuple[subprocess.Popen[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "MONGO_"))}
    process = subprocess.Popen(
        [str(AOC), "demo", "--port", str(port), "--data-dir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 120
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if "AOC demo: serving" in line:
            return process, lines
    process.kill()
    raise AssertionError("demo never said it was serving:\n" + "\n".join(lines))


def test_demo_ingests_the_samples_and_serves_them(tmp_path: Path) -> None:
    port = free_port()
    process, lines = start_demo(tmp_path, port)
    try:
        output = "\n".join(lines)
        assert "147 events in the store; 8 dead letters this run" in output, output
        assert f"http://127.0.0.1:{port}" in output

        base = f"http://127.0.0.1:{port}"
        everything = httpx.get(f"{base}/api/events", params={"page_size": 500}, timeout=10).json()
        assert len(everything["items"]) == 147
        seen: list[str] = []
        cursor = None
        while True:
            params = {"page_size": 25, **({"cursor": cursor} if cursor else {})}
            page = httpx.get(f"{base}/api/events", params=params, timeout=10).json()
            seen += [e["id"] for e in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert sorted(seen) == sorted(e["id"] for e in everything["items"])
        assert httpx.get(f"{base}/health", timeout=10).json()["status"] == "ok"
        assert "Admin Operations Center" in httpx.get(f"{base}/", timeout=10).text
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


def test_a_second_run_keeps_the_data_and_stores_nothing_twice(tmp_path: Path) -> None:
    for _ in range(2):
        result = subprocess.run(
            [
                str(AOC),
                "demo",
                "--port",
                str(free_port()),
                "--data-dir",
                str(tmp_path / "demo"),
                "--exit-when-ingested",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "147 events in the store; 8 dead letters this run" in result.stdout


def test_a_bad_setting_stops_start_up_with_one_clear_line(tmp_path: Path) -> None:
    env = {**os.environ, "RETENTION_DAYS": "-3"}
    result = subprocess.run(
        [str(AOC), "run", "api"], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: RETENTION_DAYS=-3: Input should be greater than or equal to 1"
    ]
