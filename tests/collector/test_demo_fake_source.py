"""`aoc demo --source fake`: the live collector, over HTTPS, against the local Microsoft stand-in."""

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


def test_demo_collects_from_the_stand_in_and_serves_collection_endpoints(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "MONGO_"))}
    process = subprocess.Popen(
        [str(AOC), "demo", "--source", "fake", "--port", str(port), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("serving" in line for line in lines):
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
        output = "\n".join(lines)
        # 147 admin audit records and 31 sign-ins, all through the stand-in's pages.
        assert "published 178 raw records" in output, output
        assert "178 events in the store; no dead letters this run" in output, output
        assert "keeps content for 7 days" in output

        base = f"http://127.0.0.1:{port}"
        health = httpx.get(f"{base}/api/source-health", timeout=10).json()["sources"]
        assert [(h["source"], h["status"], h["last_count"]) for h in health] == [
            ("directory", "ok", 60),
            ("intune", "ok", 30),
            ("signins", "ok", 31),
            ("unified", "ok", 57),
        ]
        again = httpx.get(f"{base}/api/fetch-audit-logs", params={"hours": 24}, timeout=60)
        assert again.status_code == 200, again.text
        counts = again.json()["counts"]
        assert set(counts) == {"directory", "intune", "signins", "unified"}
        assert counts["unified"] == 0  # every content blob of that day was already fetched
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
