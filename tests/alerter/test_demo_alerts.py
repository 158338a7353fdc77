"""`aoc demo` runs the alerter: the sample data raises the default rules' alerts and their Sigma
twins', once however often the demo runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.utils.expected import NATIVE_DEMO_ALERTS, SIGMA_DEMO_ALERTS, SIGNIN_RULE_ALERTS
from tests.utils.local_servers import free_port

AOC = Path(sys.executable).with_name("aoc")


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
        # The admin fixtures' alerts, those of the sample sign-ins, and their Sigma twins'.
        total = NATIVE_DEMO_ALERTS + SIGMA_DEMO_ALERTS
        assert f"AOC demo: {total} alerts in the store" in result.stdout, result.stdout
        for name, count in SIGNIN_RULE_ALERTS.items():
            assert f"{count} × [" in result.stdout and f"] {name}" in result.stdout
        assert "4 × [high] Mailbox forwarding to an external address" in result.stdout
        assert "7 × [high] Member added to a privileged role" in result.stdout
        assert "4 × [high] Sigma: Mailbox forwarding to an external address" in result.stdout
        assert "1 × [high] Sigma: Many failed sign-ins, then a success" in result.stdout
