"""`aoc demo` runs the alerter: the sample data raises the default rules' alerts, once however often
the demo runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.alerter.test_default_rules import EXPECTED_ALERTS

AOC = Path(sys.executable).with_name("aoc")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_demo_reports_the_sample_alerts_and_a_second_run_adds_none(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "MONGO_", "ALERT"))}
    for _ in range(2):
        result = subprocess.run(
            [
                str(AOC),
                "demo",
                "--exit-when-ingested",
                "--no-malformed",
                "--port",
                str(free_port()),
                "--data-dir",
                str(tmp_path / "demo"),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        # The admin fixtures' alerts, and the five of the sample sign-ins (test_signin_rules.py).
        total = EXPECTED_ALERTS + 5
        assert f"AOC demo: {total} alerts in the store" in result.stdout, result.stdout
        assert "1 × [high] Many failed sign-ins, then a success" in result.stdout
        assert "2 × [medium] Sign-in from a new country" in result.stdout
        assert "1 × [medium] Legacy authentication sign-in" in result.stdout
        assert "1 × [high] Risky sign-in" in result.stdout
        assert "4 × [high] Mailbox forwarding to an external address" in result.stdout
        assert "7 × [high] Member added to a privileged role" in result.stdout
